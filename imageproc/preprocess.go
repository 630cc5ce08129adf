package imageproc

import (
	"fmt"
	"image"
	"math"
)

// OpenAI's normalisation constants (clip/clip.py _transform), per RGB
// channel.
var (
	OpenAIMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	OpenAIStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// Options parameterise Preprocess.
type Options struct {
	// Size is the model's input resolution N: the short side is resized to
	// N, then the centre N×N is cropped.
	Size int
	// Mean and Std normalise each RGB channel: (v/255 − Mean) / Std.
	Mean, Std [3]float32
}

// OpenAIOptions returns the options of OpenAI's CLIP models at input size n.
func OpenAIOptions(n int) Options {
	return Options{Size: n, Mean: OpenAIMean, Std: OpenAIStd}
}

// targetSize is torchvision 0.14's Resize(n) output size: the short side
// becomes n and the long side int(n·long/short), a float64 division then
// truncation.
func targetSize(w, h, n int) (int, int) {
	if w <= h {
		return n, int(float64(n*h) / float64(w))
	}
	return int(float64(n*w) / float64(h)), n
}

// centerWindow is torchvision's CenterCrop offsets, round((d − n)/2) with
// Python's round-half-to-even (85 wide → left 10, not 11).
func centerWindow(w, h, n int) image.Rectangle {
	top := int(math.RoundToEven(float64(h-n) / 2))
	left := int(math.RoundToEven(float64(w-n) / 2))
	return image.Rect(left, top, left+n, top+n)
}

// resizePlan checks n against img and returns the Pillow-mode image with
// its resized size.
func resizePlan(img image.Image, n int) (*Image, int, int, error) {
	if n <= 0 {
		return nil, 0, 0, fmt.Errorf("imageproc: size %d must be positive", n)
	}
	b := img.Bounds()
	if b.Empty() {
		return nil, 0, 0, fmt.Errorf("imageproc: empty %d×%d image", b.Dx(), b.Dy())
	}
	if err := checkPixels(b.Dx(), b.Dy()); err != nil {
		return nil, 0, 0, err
	}
	m := fromImage(img)
	if err := m.check(); err != nil {
		return nil, 0, 0, err
	}
	w, h := targetSize(m.Width, m.Height, n)
	if err := checkPixels(w, h); err != nil {
		return nil, 0, 0, fmt.Errorf("%w (resizing %d×%d to short side %d)", err, m.Width, m.Height, n)
	}
	return m, w, h, nil
}

// ResizeShortSide resizes img as torchvision's Resize(n) with Pillow's
// BICUBIC does (see resample for the per-mode rules) and returns the result
// converted to RGB: packed HWC bytes, comparable with the `*.resized.npy`
// goldens.
func ResizeShortSide(img image.Image, n int) (*Image, error) {
	m, w, h, err := resizePlan(img, n)
	if err != nil {
		return nil, err
	}
	return resample(m, w, h, image.Rect(0, 0, w, h)).ToRGB(), nil
}

// CenterCrop returns the centre n×n of m, placed as torchvision's
// CenterCrop places it. m must be at least n×n.
func CenterCrop(m *Image, n int) (*Image, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if n <= 0 || m.Width < n || m.Height < n {
		return nil, fmt.Errorf("imageproc: cannot crop %d×%d from a %d×%d image", n, n, m.Width, m.Height)
	}
	return crop(m, centerWindow(m.Width, m.Height, n)), nil
}

// Preprocess runs CLIP's _transform(o.Size) on img and returns a [3,N,N]
// float32 tensor in CHW order. It computes only the cropped window of the
// resized image, which gives the same pixels as resizing all of it.
func Preprocess(img image.Image, o Options) ([]float32, error) {
	for c, s := range o.Std {
		if !(s > 0) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("imageproc: Std[%d] = %g must be positive and finite", c, s)
		}
	}
	m, w, h, err := resizePlan(img, o.Size)
	if err != nil {
		return nil, err
	}
	rgb := resample(m, w, h, centerWindow(w, h, o.Size)).ToRGB()
	return toTensor(rgb, o.Mean, o.Std), nil
}

// PreprocessFile decodes the image file at path and preprocesses it.
func PreprocessFile(path string, o Options) ([]float32, error) {
	m, err := DecodeFile(path)
	if err != nil {
		return nil, err
	}
	return Preprocess(m, o)
}

// toTensor is ToTensor then Normalize in float32: float32(v)/255, then
// (x − mean)/std — a subtraction then a division, never a multiplication by
// a reciprocal, to match PyTorch bit for bit. Each channel has only 256
// possible results, so they are tabulated.
func toTensor(rgb *Image, mean, std [3]float32) []float32 {
	n := rgb.Width * rgb.Height
	out := make([]float32, 3*n)
	for c := range 3 {
		var lut [256]float32
		for v := range lut {
			x := float32(v) / 255
			lut[v] = (x - mean[c]) / std[c]
		}
		plane := out[c*n : (c+1)*n]
		for i := range plane {
			plane[i] = lut[rgb.Pix[3*i+c]]
		}
	}
	return out
}
