//go:build js && wasm

package imageproc

// platformFormats is empty in the browser, which decodes JPEG and WebP
// itself (web/decode.js): their decoders stay out of the binary.
var platformFormats []format
