// Package checkpoint reads CLIP weights from the common checkpoint formats
// into named tensors: OpenAI's TorchScript .pt archives, torch.save state
// dicts (including OpenCLIP training checkpoints), safetensors files, and
// Hugging Face and OpenCLIP model folders. It knows nothing about the model;
// it yields tensors and metadata, and reports malformed input as errors
// that name the file and tensor.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Format names the layout a checkpoint was read from.
type Format string

// The formats Open recognises.
const (
	FormatTorchScript          Format = "torchscript"            // OpenAI's released .pt: a TorchScript archive
	FormatTorchStateDict       Format = "torch-state-dict"       // torch.save of a state dict (zip)
	FormatSafetensors          Format = "safetensors"            // a lone .safetensors file
	FormatHFSafetensors        Format = "hf-safetensors"         // HF folder: config.json + model.safetensors
	FormatHFSafetensorsSharded Format = "hf-safetensors-sharded" // HF folder: model.safetensors.index.json + shards
	FormatHFPytorchBin         Format = "hf-pytorch-bin"         // HF folder: config.json + pytorch_model.bin
	FormatOpenCLIPSafetensors  Format = "openclip-safetensors"   // open_clip_config.json + open_clip_model.safetensors
	FormatOpenCLIPBin          Format = "openclip-bin"           // open_clip_config.json + open_clip_pytorch_model.bin
)

// Checkpoint is an opened set of weights.
type Checkpoint struct {
	// Format is the layout the weights came from.
	Format Format
	// Path is the file or folder given to Open.
	Path string
	// Tensors holds every weight under its stored name, minus a "module."
	// prefix (when every name has one) and minus a training checkpoint's
	// {"state_dict": ...} wrapper.
	Tensors map[string]*Tensor
	// Config is the Hugging Face config.json of a folder, or nil.
	Config []byte
	// OpenCLIPConfig is the open_clip_config.json of a folder, or nil.
	OpenCLIPConfig []byte
	// Extras holds non-tensor values: a TorchScript archive's top-level 0-d
	// integer buffers (input_resolution, context_length, vocab_size) as
	// int64, which are therefore not in Tensors; a training checkpoint's
	// scalars (epoch as int64, name, ...); safetensors "__metadata__" as
	// map[string]string.
	Extras map[string]any

	sources []source
}

// Open reads a checkpoint file or folder. The format is sniffed from the
// content, not the file name: a zip is a torch archive, a length-prefixed
// JSON header is safetensors. A folder is read through its well-known file
// names, Hugging Face ones first (model.safetensors.index.json,
// model.safetensors, pytorch_model.bin), then OpenCLIP ones
// (open_clip_model.safetensors, open_clip_pytorch_model.bin).
//
// Tensor bytes may alias a read-only mapping of the file: see Close.
func Open(path string) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c := &Checkpoint{Path: path, Tensors: map[string]*Tensor{}, Extras: map[string]any{}}
	if st.IsDir() {
		err = c.openDir(path)
	} else {
		c.Format, err = c.openFile(path)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	c.stripModulePrefix()
	return c, nil
}

// Names returns the tensor names, sorted.
func (c *Checkpoint) Names() []string {
	return slices.Sorted(maps.Keys(c.Tensors))
}

// Close releases the files. Tensor bytes that alias a file mapping become
// invalid, so callers copy whatever they keep beyond Close.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, s := range c.sources {
		errs = append(errs, s.Close())
	}
	c.sources = nil
	return errors.Join(errs...)
}

// kind is what a file's first bytes say it is.
type kind int

const (
	kindUnknown kind = iota
	kindZip
	kindSafetensors
)

// openFile reads one weights file into c and returns the format its content
// implies.
func (c *Checkpoint) openFile(path string) (Format, error) {
	src, err := openSource(path)
	if err != nil {
		return "", err
	}
	c.sources = append(c.sources, src)
	k, err := sniff(src)
	if err != nil {
		return "", err
	}
	var tensors map[string]*Tensor
	var format Format
	switch k {
	case kindZip:
		var extras map[string]any
		format, tensors, extras, err = readTorchZip(src)
		for n, v := range extras {
			c.Extras[n] = v
		}
	case kindSafetensors:
		var meta map[string]string
		format = FormatSafetensors
		tensors, meta, err = parseSafetensors(src)
		if meta != nil {
			// Shards each carry their own; merge them.
			all, _ := c.Extras[metadataKey].(map[string]string)
			if all == nil {
				all = map[string]string{}
			}
			maps.Copy(all, meta)
			c.Extras[metadataKey] = all
		}
	}
	if err != nil {
		return "", err
	}
	for n, t := range tensors {
		if c.Tensors[n] != nil {
			return "", fmt.Errorf("tensor %q appears in more than one file", n)
		}
		c.Tensors[n] = t
	}
	return format, nil
}

// sniff classifies a file by its first bytes.
func sniff(src source) (kind, error) {
	head := make([]byte, 16)
	n, _ := src.ReadAt(head, 0)
	head = head[:n]
	switch {
	case strings.HasPrefix(string(head), "PK\x03\x04") || strings.HasPrefix(string(head), "PK\x05\x06"):
		return kindZip, nil
	case strings.HasPrefix(string(head), string(legacyMagic)):
		return kindUnknown, errors.New("legacy pre-1.6 torch format not supported (a bare pickle stream, not a zip archive); re-save it with a recent torch.save")
	case isSafetensors(head):
		return kindSafetensors, nil
	case n == 0:
		return kindUnknown, errors.New("empty file")
	}
	return kindUnknown, fmt.Errorf("unknown checkpoint format (first bytes % x): not a PyTorch zip archive or a safetensors file", head)
}

// Folder file names, by role.
const (
	hfConfig         = "config.json"
	hfIndex          = "model.safetensors.index.json"
	hfSafetensors    = "model.safetensors"
	hfBin            = "pytorch_model.bin"
	openCLIPConfig   = "open_clip_config.json"
	openCLIPSafe     = "open_clip_model.safetensors"
	openCLIPBin      = "open_clip_pytorch_model.bin"
	folderCandidates = hfIndex + ", " + hfSafetensors + ", " + hfBin + ", " + openCLIPSafe + ", " + openCLIPBin
	hfBinIndex       = "pytorch_model.bin.index.json"
)

// openDir reads a model folder through its well-known file names.
func (c *Checkpoint) openDir(dir string) error {
	var err error
	if c.Config, err = readOptional(filepath.Join(dir, hfConfig)); err != nil {
		return err
	}
	if c.OpenCLIPConfig, err = readOptional(filepath.Join(dir, openCLIPConfig)); err != nil {
		return err
	}
	exists := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && !st.IsDir()
	}
	if exists(hfIndex) {
		c.Format = FormatHFSafetensorsSharded
		return c.openSharded(dir)
	}
	type candidate struct {
		file   string
		format Format
		want   Format // the format the file's content must have
	}
	for _, cand := range []candidate{
		{hfSafetensors, FormatHFSafetensors, FormatSafetensors},
		{hfBin, FormatHFPytorchBin, FormatTorchStateDict},
		{openCLIPSafe, FormatOpenCLIPSafetensors, FormatSafetensors},
		{openCLIPBin, FormatOpenCLIPBin, FormatTorchStateDict},
	} {
		if !exists(cand.file) {
			continue
		}
		got, err := c.openFile(filepath.Join(dir, cand.file))
		if err != nil {
			return fmt.Errorf("%s: %w", cand.file, err)
		}
		if got != cand.want {
			return fmt.Errorf("%s: content is %s, want %s", cand.file, got, cand.want)
		}
		c.Format = cand.format
		return nil
	}
	if exists(hfBinIndex) {
		return fmt.Errorf("sharded %s is not supported; convert the model to safetensors", hfBinIndex)
	}
	return fmt.Errorf("no checkpoint in folder (looked for %s)", folderCandidates)
}

// readOptional returns a file's contents, or nil if it does not exist.
func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// openSharded reads a model.safetensors.index.json folder: every shard the
// weight_map names, each of which must hold the tensors assigned to it.
func (c *Checkpoint) openSharded(dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, hfIndex))
	if err != nil {
		return err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return fmt.Errorf("%s: bad JSON: %w", hfIndex, err)
	}
	if len(index.WeightMap) == 0 {
		return fmt.Errorf("%s: empty or missing weight_map", hfIndex)
	}
	var shards []string
	for name, file := range index.WeightMap {
		if !filepath.IsLocal(file) {
			return fmt.Errorf("%s: tensor %q: shard path %q leaves the folder", hfIndex, name, file)
		}
		if !slices.Contains(shards, file) {
			shards = append(shards, file)
		}
	}
	slices.Sort(shards)
	for _, file := range shards {
		got, err := c.openFile(filepath.Join(dir, file))
		if err != nil {
			return fmt.Errorf("shard %s named in %s: %w", file, hfIndex, err)
		}
		if got != FormatSafetensors {
			return fmt.Errorf("shard %s: content is %s, want safetensors", file, got)
		}
	}
	for name, file := range index.WeightMap {
		if c.Tensors[name] == nil {
			return fmt.Errorf("tensor %q, which %s assigns to %s, is missing from that shard", name, hfIndex, file)
		}
	}
	return nil
}

// stripModulePrefix drops the "module." that DataParallel training adds,
// but only when every name has it, so that a name merely starting with
// "module." in a normal checkpoint is left alone.
func (c *Checkpoint) stripModulePrefix() {
	const p = "module."
	if len(c.Tensors) == 0 {
		return
	}
	for n := range c.Tensors {
		if !strings.HasPrefix(n, p) {
			return
		}
	}
	stripped := make(map[string]*Tensor, len(c.Tensors))
	for n, t := range c.Tensors {
		t.Name = strings.TrimPrefix(n, p)
		stripped[t.Name] = t
	}
	c.Tensors = stripped
}
