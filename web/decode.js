// Image decoding for the engine, run inside the worker (and by the browser
// tests, to see the pixels the engine saw).
//
// The browser decodes: every format it knows, EXIF orientation applied,
// colour kept as stored (no ICC or gamma conversion, as Pillow does not
// convert either) and straight alpha, read back from an OffscreenCanvas.
// The Go side then resizes and crops exactly as Pillow does.
//
// Palette images are the exception. Pillow resizes them with NEAREST and
// gives transparent pixels their palette colour; browser pixels keep
// neither, so those files go to the Go decoder as bytes.

const bitmapOptions = {
  imageOrientation: 'from-image',
  colorSpaceConversion: 'none',
  premultiplyAlpha: 'none',
};

/**
 * Reports whether a file's first bytes announce a palette (or bilevel)
 * image, which Pillow opens in mode P (or 1): a GIF, or a PNG of colour
 * type 3, or of colour type 0 at 1 bit per pixel.
 * @param {Uint8Array} head at least the first 26 bytes
 */
export function isPaletteImage(head) {
  const ascii = String.fromCharCode(...head.subarray(0, 6));
  if (ascii === 'GIF87a' || ascii === 'GIF89a') return true;
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (head.length < 26 || !png.every((b, i) => head[i] === b)) return false;
  // IHDR is the first chunk: bit depth at byte 24, colour type at 25.
  const depth = head[24], colourType = head[25];
  return colourType === 3 || (colourType === 0 && depth === 1);
}

/**
 * Decodes an image into what the engine takes: {width, height, rgba} or,
 * for palette files, {encoded}.
 * @param {Blob|ImageBitmap|ImageData} source
 */
export async function decodeImage(source) {
  if (source instanceof ImageData) {
    return { width: source.width, height: source.height, rgba: source.data };
  }
  if (source instanceof Blob) {
    const head = new Uint8Array(await source.slice(0, 32).arrayBuffer());
    if (isPaletteImage(head)) {
      return { encoded: new Uint8Array(await source.arrayBuffer()) };
    }
  }
  const bitmap = await createImageBitmap(source, bitmapOptions);
  try {
    const { width, height } = bitmap;
    const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    return { width, height, rgba: ctx.getImageData(0, 0, width, height).data };
  } finally {
    bitmap.close();
  }
}
