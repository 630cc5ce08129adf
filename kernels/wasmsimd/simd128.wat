;; simd128.wat — the WebAssembly SIMD128 kernels of package wasmsimd.
;;
;; This module has no memory of its own: it imports the Go instance's linear
;; memory (exported by Go's linker as "mem") and works directly on Go slices,
;; so no data is ever copied between the two instances. Every pointer is a
;; byte address in that memory, every count and stride is in elements. The
;; kernels trust their arguments: the Go wrappers (imports_wasm.go) check
;; every slice length against m, n, k before calling.
;;
;; Matrix convention: y = x·Wᵀ with W row-major [n, k] (PyTorch's
;; nn.Linear). The GEMMs take W as stored, with no packing: each 2×4 register
;; tile accumulates dot products along k, a vector of 4 partial sums per
;; (row, column) pair, and reduces them horizontally once per tile. That
;; costs the same loads per multiply as a panel-packed layout but needs no
;; packed copy of the weights, which matters in a browser tab, and lets the
;; attention GEMM read keys straight from the fused QKV buffer with a stride.
;;
;; Tails are handled without separate code paths where possible: the last
;; row or column of a partial tile is clamped to the last valid one (its
;; result is computed twice and stored twice, same value), and only the
;; stores and the final partial k step use lane-wise helpers, so no kernel
;; reads or writes outside the ranges the Go side checked.
(module
  (import "env" "mem" (memory 1))

  ;; ---------------------------------------------------------------------
  ;; Helpers
  ;; ---------------------------------------------------------------------

  ;; $min returns the smaller of two signed i32s.
  (func $min (param $a i32) (param $b i32) (result i32)
    (select (local.get $a) (local.get $b) (i32.lt_s (local.get $a) (local.get $b))))

  ;; $hsum4_i32 returns [Σa, Σb, Σc, Σd]: four horizontal sums in one
  ;; vector, so a tile row of four dot products is stored with one store.
  (func $hsum4_i32 (param $a v128) (param $b v128) (param $c v128) (param $d v128) (result v128)
    (local $ab v128) (local $cd v128)
    ;; [a0+a1, a2+a3, b0+b1, b2+b3]
    (local.set $ab (i32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a) (local.get $b))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $a) (local.get $b))))
    (local.set $cd (i32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $c) (local.get $d))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $c) (local.get $d))))
    (i32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $ab) (local.get $cd))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $ab) (local.get $cd))))

  ;; $hsum4_f32 is $hsum4_i32 for f32 lanes.
  (func $hsum4_f32 (param $a v128) (param $b v128) (param $c v128) (param $d v128) (result v128)
    (local $ab v128) (local $cd v128)
    (local.set $ab (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a) (local.get $b))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $a) (local.get $b))))
    (local.set $cd (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $c) (local.get $d))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $c) (local.get $d))))
    (f32x4.add
      (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $ab) (local.get $cd))
      (i8x16.shuffle 4 5 6 7 12 13 14 15 20 21 22 23 28 29 30 31 (local.get $ab) (local.get $cd))))

  ;; $load4s loads the first cnt (1..4) 32-bit lanes at ptr, zeros in the
  ;; rest. It moves bits only (integer lane ops), so f32 NaN payloads and
  ;; i32 values pass through unchanged.
  (func $load4s (param $ptr i32) (param $cnt i32) (result v128)
    (local $v v128)
    (if (i32.ge_u (local.get $cnt) (i32.const 4))
      (then (return (v128.load align=4 (local.get $ptr)))))
    (local.set $v (v128.load32_zero (local.get $ptr)))
    (if (i32.gt_u (local.get $cnt) (i32.const 1))
      (then (local.set $v (i32x4.replace_lane 1 (local.get $v) (i32.load offset=4 (local.get $ptr))))))
    (if (i32.gt_u (local.get $cnt) (i32.const 2))
      (then (local.set $v (i32x4.replace_lane 2 (local.get $v) (i32.load offset=8 (local.get $ptr))))))
    (local.get $v))

  ;; $store4s stores the first cnt (1..4) 32-bit lanes of v at ptr.
  (func $store4s (param $ptr i32) (param $v v128) (param $cnt i32)
    (if (i32.ge_u (local.get $cnt) (i32.const 4))
      (then (v128.store align=4 (local.get $ptr) (local.get $v)) (return)))
    (v128.store32_lane 0 (local.get $ptr) (local.get $v))
    (if (i32.gt_u (local.get $cnt) (i32.const 1))
      (then (v128.store32_lane offset=4 1 (local.get $ptr) (local.get $v))))
    (if (i32.gt_u (local.get $cnt) (i32.const 2))
      (then (v128.store32_lane offset=8 2 (local.get $ptr) (local.get $v)))))

  ;; $load_bytes loads cnt (0..15) bytes at ptr into the low lanes of a
  ;; vector, zeros above: the partial last k step of the int8 kernels. Lane
  ;; indices must be constants in wasm, so the bytes are gathered into two
  ;; i64 halves first.
  (func $load_bytes (param $ptr i32) (param $cnt i32) (result v128)
    (local $lo i64) (local $hi i64) (local $t i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $t) (local.get $cnt)))
        (if (i32.lt_u (local.get $t) (i32.const 8))
          (then (local.set $lo (i64.or (local.get $lo)
            (i64.shl (i64.load8_u (i32.add (local.get $ptr) (local.get $t)))
                     (i64.extend_i32_u (i32.shl (local.get $t) (i32.const 3)))))))
          (else (local.set $hi (i64.or (local.get $hi)
            (i64.shl (i64.load8_u (i32.add (local.get $ptr) (local.get $t)))
                     (i64.extend_i32_u (i32.shl (i32.sub (local.get $t) (i32.const 8)) (i32.const 3))))))))
        (local.set $t (i32.add (local.get $t) (i32.const 1)))
        (br $next)))
    (i64x2.replace_lane 1 (i64x2.splat (local.get $lo)) (local.get $hi)))

  ;; $lanes_below returns a mask with the lanes < cnt set (all ones).
  (func $lanes_below (param $cnt i32) (result v128)
    (i32x4.lt_s (v128.const i32x4 0 1 2 3) (i32x4.splat (local.get $cnt))))

  ;; Constants in loops. V8 (x64) rematerializes a v128.const at every use,
  ;; three instructions, and hoists none out of a loop; with the dozen or so
  ;; constants of exp or erf that halved the speed of the activations. So
  ;; the kernels set their constants into locals once, before the loop: the
  ;; exp helper takes them as parameters (V8 inlines it, and the locals stay
  ;; in registers or one stack load away), gelu writes its body inline.

  ;; $exp_consts returns the constants of $exp4k, in its parameter order.
  (func $exp_consts (result v128 v128 v128 v128 v128 v128 v128 v128 v128 v128 v128 v128 v128 v128)
    (v128.const f32x4 -87.3365447504019 -87.3365447504019 -87.3365447504019 -87.3365447504019) (v128.const f32x4 88.37 88.37 88.37 88.37)  ;; clamp: lo, hi
    (v128.const f32x4 1.44269504088896341 1.44269504088896341 1.44269504088896341 1.44269504088896341) (v128.const f32x4 0.5 0.5 0.5 0.5)  ;; log2(e), 0.5
    (v128.const f32x4 0.693359375 0.693359375 0.693359375 0.693359375) (v128.const f32x4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4 -2.12194440e-4)  ;; ln2 = ln2Hi + ln2Lo
    (v128.const f32x4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4 1.9875691500e-4) (v128.const f32x4 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3 1.3981999507e-3) (v128.const f32x4 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3 8.3334519073e-3)  ;; polynomial
    (v128.const f32x4 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2 4.1665795894e-2) (v128.const f32x4 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1 1.6666665459e-1) (v128.const f32x4 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1 5.0000001201e-1)
    (v128.const f32x4 1 1 1 1)  ;; 1
    (v128.const f32x4 8388735 8388735 8388735 8388735))  ;; 2**23 + 127, see $exp4k

  ;; $exp4k is e**x per lane in f32, within about 2 ulp, by Cephes' expf:
  ;; x = n·ln2 + r with |r| ≤ ln2/2, a degree-6 polynomial for e**r, and 2**n
  ;; built in the exponent bits; the other parameters are $exp_consts. x is
  ;; clamped to where 2**n stays a normal float, so large negative x gives
  ;; ~1e-38 rather than 0 (no caller can tell); NaN stays NaN. For speed on
  ;; x64: the clamp uses pmin/pmax (one instruction each; min/max with
  ;; wasm's NaN and ±0 rules take several), and 2**n comes from adding
  ;; 2**23+127 to n as a float, whose low mantissa bits then hold n+127,
  ;; shifted into the exponent field (i32x4.trunc_sat_f32x4_s is a long
  ;; saturating sequence).
  (func $exp4k (param $x v128) (param $lo v128) (param $hi v128) (param $log2e v128) (param $half v128)
    (param $ln2hi v128) (param $ln2lo v128) (param $c0 v128) (param $c1 v128) (param $c2 v128) (param $c3 v128)
    (param $c4 v128) (param $c5 v128) (param $one v128) (param $bias v128) (result v128)
    (local $fn v128) (local $r v128) (local $p v128)
    (local.set $x (f32x4.pmin (f32x4.pmax (local.get $x) (local.get $lo)) (local.get $hi)))
    (local.set $fn (f32x4.floor (f32x4.add (f32x4.mul (local.get $x) (local.get $log2e)) (local.get $half))))
    ;; ln2 in two parts, so fn·ln2Hi is exact for every fn that occurs.
    (local.set $r (f32x4.sub (f32x4.sub (local.get $x) (f32x4.mul (local.get $fn) (local.get $ln2hi)))
                             (f32x4.mul (local.get $fn) (local.get $ln2lo))))
    (local.set $p (f32x4.add (f32x4.mul (local.get $c0) (local.get $r)) (local.get $c1)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (local.get $c2)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (local.get $c3)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (local.get $c4)))
    (local.set $p (f32x4.add (f32x4.mul (local.get $p) (local.get $r)) (local.get $c5)))
    ;; e**r = p·r² + r + 1, scaled by 2**n.
    (f32x4.mul
      (f32x4.add (f32x4.add (f32x4.mul (f32x4.mul (local.get $p) (local.get $r)) (local.get $r)) (local.get $r)) (local.get $one))
      (i32x4.shl (f32x4.add (local.get $fn) (local.get $bias)) (i32.const 23))))

  ;; ---------------------------------------------------------------------
  ;; f32 GEMMs
  ;; ---------------------------------------------------------------------

  ;; f32_gemm: dst[i·ldd + j] = Σ_p x[i·ldx + p]·w[j·ldw + p] + bias[j] for
  ;; i < m, j < n, p < k (bias = 0 means none). A tile is 2 rows of x by 4
  ;; rows of W held in 8 vector accumulators: with one x vector per row and
  ;; one W vector live, that is 12 of the 16 xmm registers V8 allocates on
  ;; x64, so nothing spills. The loop runs W groups outermost: a group of 4
  ;; W rows (12 KiB at k = 768) stays in L1 while every row pair of x streams
  ;; past it, and W, the large operand, is read from memory once. A later
  ;; thread pool splits n: each thread gets dst, w and bias offset by its
  ;; first column.
  (func $f32_gemm (export "f32_gemm")
    (param $dst i32) (param $ldd i32) (param $x i32) (param $ldx i32)
    (param $w i32) (param $ldw i32) (param $bias i32)
    (param $m i32) (param $n i32) (param $k i32)
    (local $j i32) (local $i i32) (local $cnt i32) (local $p i32) (local $rest i32)
    (local $kb i32) (local $kv i32)
    (local $w0 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32)
    (local $x0 i32) (local $x1 i32) (local $d i32)
    (local $bv v128) (local $a0 v128) (local $a1 v128) (local $b v128) (local $r v128)
    (local $c00 v128) (local $c01 v128) (local $c02 v128) (local $c03 v128)
    (local $c10 v128) (local $c11 v128) (local $c12 v128) (local $c13 v128)
    ;; Byte strides and k extents: kv covers whole vectors.
    (local.set $ldd (i32.shl (local.get $ldd) (i32.const 2)))
    (local.set $ldx (i32.shl (local.get $ldx) (i32.const 2)))
    (local.set $ldw (i32.shl (local.get $ldw) (i32.const 2)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (local.set $kv (i32.and (local.get $kb) (i32.const -16)))
    (loop $cols
      (local.set $cnt (call $min (i32.const 4) (i32.sub (local.get $n) (local.get $j))))
      ;; W rows past n are clamped to the last one; their lanes are not stored.
      (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ldw))))
      (local.set $w1 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 1)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $w2 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 2)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $w3 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 3)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $bv (v128.const i32x4 0 0 0 0))
      (if (local.get $bias)
        (then (local.set $bv (if (result v128) (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.load align=4 (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))) (else (call $load4s (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $cnt)))))))
      (local.set $i (i32.const 0))
      (loop $rows
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ldx))))
        (local.set $x1 (i32.add (local.get $x) (i32.mul (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldx))))
        (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
        (local.set $c02 (v128.const i32x4 0 0 0 0)) (local.set $c03 (v128.const i32x4 0 0 0 0))
        (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
        (local.set $c12 (v128.const i32x4 0 0 0 0)) (local.set $c13 (v128.const i32x4 0 0 0 0))
        (local.set $p (i32.const 0))
        ;; Main loop: one vector (4 floats) of k per step. Unrolled twice it
        ;; was 4–9% slower on ViT-B/32 shapes (fastest calls, Chromium 156,
        ;; both sets): V8 schedules the second step's six loads above the
        ;; first step's multiply-adds, and with the 8 accumulators that
        ;; spills (seen in Node 20's V8 disassembly).
        (block $kdone
          (loop $kloop
            (br_if $kdone (i32.ge_u (local.get $p) (local.get $kv)))
            (local.set $a0 (v128.load align=4 (i32.add (local.get $x0) (local.get $p))))
            (local.set $a1 (v128.load align=4 (i32.add (local.get $x1) (local.get $p))))
            (local.set $b (v128.load align=4 (i32.add (local.get $w0) (local.get $p))))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $b (v128.load align=4 (i32.add (local.get $w1) (local.get $p))))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $b (v128.load align=4 (i32.add (local.get $w2) (local.get $p))))
            (local.set $c02 (f32x4.add (local.get $c02) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c12 (f32x4.add (local.get $c12) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $b (v128.load align=4 (i32.add (local.get $w3) (local.get $p))))
            (local.set $c03 (f32x4.add (local.get $c03) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c13 (f32x4.add (local.get $c13) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $kloop)))
        ;; Then a partial vector (1..3 floats, zero filled, so the missing
        ;; lanes add 0·0).
        (if (i32.lt_u (local.get $p) (local.get $kb))
          (then
            (local.set $rest (i32.shr_u (i32.sub (local.get $kb) (local.get $p)) (i32.const 2)))
            (local.set $a0 (call $load4s (i32.add (local.get $x0) (local.get $p)) (local.get $rest)))
            (local.set $a1 (call $load4s (i32.add (local.get $x1) (local.get $p)) (local.get $rest)))
            (local.set $b (call $load4s (i32.add (local.get $w0) (local.get $p)) (local.get $rest)))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $b (call $load4s (i32.add (local.get $w1) (local.get $p)) (local.get $rest)))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $b (call $load4s (i32.add (local.get $w2) (local.get $p)) (local.get $rest)))
            (local.set $c02 (f32x4.add (local.get $c02) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c12 (f32x4.add (local.get $c12) (f32x4.mul (local.get $a1) (local.get $b))))
            (local.set $b (call $load4s (i32.add (local.get $w3) (local.get $p)) (local.get $rest)))
            (local.set $c03 (f32x4.add (local.get $c03) (f32x4.mul (local.get $a0) (local.get $b))))
            (local.set $c13 (f32x4.add (local.get $c13) (f32x4.mul (local.get $a1) (local.get $b))))))
        ;; Epilogue: reduce, add bias, store row i and row i+1 (clamped).
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $r (f32x4.add (call $hsum4_f32 (local.get $c00) (local.get $c01) (local.get $c02) (local.get $c03)) (local.get $bv)))
        (if (i32.eq (local.get $cnt) (i32.const 4))
          (then (v128.store align=4 (local.get $d) (local.get $r)))
          (else (call $store4s (local.get $d) (local.get $r) (local.get $cnt))))
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $r (f32x4.add (call $hsum4_f32 (local.get $c10) (local.get $c11) (local.get $c12) (local.get $c13)) (local.get $bv)))
        (if (i32.eq (local.get $cnt) (i32.const 4))
          (then (v128.store align=4 (local.get $d) (local.get $r)))
          (else (call $store4s (local.get $d) (local.get $r) (local.get $cnt))))
        (local.set $i (i32.add (local.get $i) (i32.const 2)))
        (br_if $rows (i32.lt_s (local.get $i) (local.get $m))))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br_if $cols (i32.lt_s (local.get $j) (local.get $n)))))

  ;; f32_gemm_nn: dst[i·ldd + j] = Σ_p x[i·ldx + p]·w[p·ldw + j], W row-major
  ;; [k, n] (not transposed): attention's probabilities × values, where the
  ;; values are rows of the fused QKV buffer. A tile is 4 rows by 8 columns:
  ;; per p one x value is splat per row and two W vectors are shared by the
  ;; four rows. A partial last column block is moved left to end at n and
  ;; recomputes a few columns (dst is overwritten, never accumulated, so
  ;; that is harmless); n < 8 falls back to a scalar loop.
  (func $f32_gemm_nn (export "f32_gemm_nn")
    (param $dst i32) (param $ldd i32) (param $x i32) (param $ldx i32)
    (param $w i32) (param $ldw i32)
    (param $m i32) (param $n i32) (param $k i32)
    (local $i i32) (local $j i32) (local $jj i32) (local $p i32) (local $kb i32)
    (local $x0 i32) (local $x1 i32) (local $x2 i32) (local $x3 i32) (local $wp i32) (local $s f32)
    (local $a v128) (local $b0 v128) (local $b1 v128)
    (local $c00 v128) (local $c01 v128) (local $c10 v128) (local $c11 v128)
    (local $c20 v128) (local $c21 v128) (local $c30 v128) (local $c31 v128)
    (local.set $ldd (i32.shl (local.get $ldd) (i32.const 2)))
    (local.set $ldx (i32.shl (local.get $ldx) (i32.const 2)))
    (local.set $ldw (i32.shl (local.get $ldw) (i32.const 2)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (if (i32.lt_s (local.get $n) (i32.const 8))
      (then
        (loop $srows
          (local.set $j (i32.const 0))
          (loop $scols
            (local.set $s (f32.const 0))
            (local.set $wp (i32.add (local.get $w) (i32.shl (local.get $j) (i32.const 2))))
            (local.set $p (i32.const 0))
            (block $sdone
              (loop $sk
                (br_if $sdone (i32.ge_u (local.get $p) (local.get $kb)))
                (local.set $s (f32.add (local.get $s)
                  (f32.mul (f32.load (i32.add (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ldx))) (local.get $p)))
                           (f32.load (local.get $wp)))))
                (local.set $wp (i32.add (local.get $wp) (local.get $ldw)))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (br $sk)))
            (f32.store (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2)))
                       (local.get $s))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $scols (i32.lt_s (local.get $j) (local.get $n))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $srows (i32.lt_s (local.get $i) (local.get $m))))
        (return)))
    (loop $rows
      (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ldx))))
      (local.set $x1 (i32.add (local.get $x) (i32.mul (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldx))))
      (local.set $x2 (i32.add (local.get $x) (i32.mul (call $min (i32.add (local.get $i) (i32.const 2)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldx))))
      (local.set $x3 (i32.add (local.get $x) (i32.mul (call $min (i32.add (local.get $i) (i32.const 3)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldx))))
      (local.set $j (i32.const 0))
      (loop $cols
        (local.set $jj (call $min (local.get $j) (i32.sub (local.get $n) (i32.const 8))))
        (local.set $wp (i32.add (local.get $w) (i32.shl (local.get $jj) (i32.const 2))))
        (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
        (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
        (local.set $c20 (v128.const i32x4 0 0 0 0)) (local.set $c21 (v128.const i32x4 0 0 0 0))
        (local.set $c30 (v128.const i32x4 0 0 0 0)) (local.set $c31 (v128.const i32x4 0 0 0 0))
        (local.set $p (i32.const 0))
        (block $kdone
          (loop $kloop
            (br_if $kdone (i32.ge_u (local.get $p) (local.get $kb)))
            (local.set $b0 (v128.load align=4 (local.get $wp)))
            (local.set $b1 (v128.load offset=16 align=4 (local.get $wp)))
            (local.set $a (v128.load32_splat (i32.add (local.get $x0) (local.get $p))))
            (local.set $c00 (f32x4.add (local.get $c00) (f32x4.mul (local.get $a) (local.get $b0))))
            (local.set $c01 (f32x4.add (local.get $c01) (f32x4.mul (local.get $a) (local.get $b1))))
            (local.set $a (v128.load32_splat (i32.add (local.get $x1) (local.get $p))))
            (local.set $c10 (f32x4.add (local.get $c10) (f32x4.mul (local.get $a) (local.get $b0))))
            (local.set $c11 (f32x4.add (local.get $c11) (f32x4.mul (local.get $a) (local.get $b1))))
            (local.set $a (v128.load32_splat (i32.add (local.get $x2) (local.get $p))))
            (local.set $c20 (f32x4.add (local.get $c20) (f32x4.mul (local.get $a) (local.get $b0))))
            (local.set $c21 (f32x4.add (local.get $c21) (f32x4.mul (local.get $a) (local.get $b1))))
            (local.set $a (v128.load32_splat (i32.add (local.get $x3) (local.get $p))))
            (local.set $c30 (f32x4.add (local.get $c30) (f32x4.mul (local.get $a) (local.get $b0))))
            (local.set $c31 (f32x4.add (local.get $c31) (f32x4.mul (local.get $a) (local.get $b1))))
            (local.set $wp (i32.add (local.get $wp) (local.get $ldw)))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $kloop)))
        ;; Rows past m were clamped to m−1: their stores repeat row m−1's.
        (local.set $wp (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $jj) (i32.const 2))))
        (v128.store align=4 (local.get $wp) (local.get $c00))
        (v128.store offset=16 align=4 (local.get $wp) (local.get $c01))
        (local.set $wp (i32.add (i32.add (local.get $dst) (i32.mul (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldd))) (i32.shl (local.get $jj) (i32.const 2))))
        (v128.store align=4 (local.get $wp) (local.get $c10))
        (v128.store offset=16 align=4 (local.get $wp) (local.get $c11))
        (local.set $wp (i32.add (i32.add (local.get $dst) (i32.mul (call $min (i32.add (local.get $i) (i32.const 2)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldd))) (i32.shl (local.get $jj) (i32.const 2))))
        (v128.store align=4 (local.get $wp) (local.get $c20))
        (v128.store offset=16 align=4 (local.get $wp) (local.get $c21))
        (local.set $wp (i32.add (i32.add (local.get $dst) (i32.mul (call $min (i32.add (local.get $i) (i32.const 3)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldd))) (i32.shl (local.get $jj) (i32.const 2))))
        (v128.store align=4 (local.get $wp) (local.get $c30))
        (v128.store offset=16 align=4 (local.get $wp) (local.get $c31))
        (local.set $j (i32.add (local.get $j) (i32.const 8)))
        (br_if $cols (i32.lt_s (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br_if $rows (i32.lt_s (local.get $i) (local.get $m)))))

  ;; ---------------------------------------------------------------------
  ;; int8 GEMM and the quantizers that feed it
  ;; ---------------------------------------------------------------------

  ;; quant_i8 quantizes each row of x [m, k] (stride ldx floats) to int8
  ;; symmetrically: s = max|row|/127, q = nearest(x·(127/max|row|)) with
  ;; ties to even; an all-zero row gets s = 0 and q = 0. Writes q to dst
  ;; (stride ldd bytes) and s to sx[i].
  (func $quant_i8 (export "quant_i8")
    (param $dst i32) (param $ldd i32) (param $sx i32) (param $x i32) (param $ldx i32)
    (param $m i32) (param $k i32)
    (local $i i32) (local $xr i32) (local $qr i32) (local $p i32) (local $kb i32) (local $kv i32) (local $k16 i32)
    (local $amax f32) (local $inv f32) (local $v v128) (local $iv v128)
    (local.set $ldx (i32.shl (local.get $ldx) (i32.const 2)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (local.set $kv (i32.and (local.get $kb) (i32.const -16)))
    (local.set $k16 (i32.and (local.get $k) (i32.const -16)))
    (block $end (loop $rows
      (br_if $end (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ldx))))
      (local.set $qr (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))))
      ;; max |x| over the row
      (local.set $v (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $p) (local.get $kv)))
        (local.set $v (f32x4.max (local.get $v) (f32x4.abs (v128.load align=4 (i32.add (local.get $xr) (local.get $p))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l1)))
      (local.set $amax (f32.max (f32.max (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
                                (f32.max (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $p) (local.get $kb)))
        (local.set $amax (f32.max (local.get $amax) (f32.abs (f32.load (i32.add (local.get $xr) (local.get $p))))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l2)))
      (local.set $inv (f32.const 0))
      (if (f32.gt (local.get $amax) (f32.const 0))
        (then (local.set $inv (f32.div (f32.const 127) (local.get $amax)))))
      (f32.store (i32.add (local.get $sx) (i32.shl (local.get $i) (i32.const 2))) (f32.div (local.get $amax) (f32.const 127)))
      (local.set $iv (f32x4.splat (local.get $inv)))
      ;; 16 values per step: four f32 vectors → i32 → i16 → i8.
      (local.set $p (i32.const 0))
      (block $d3 (loop $l3
        (br_if $d3 (i32.ge_u (local.get $p) (local.get $k16)))
        (v128.store align=1 (i32.add (local.get $qr) (local.get $p))
          (i8x16.narrow_i16x8_s
            (i16x8.narrow_i32x4_s
              (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv))))
              (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=16 align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv)))))
            (i16x8.narrow_i32x4_s
              (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=32 align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv))))
              (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (v128.load offset=48 align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l3)))
      (block $d4 (loop $l4
        (br_if $d4 (i32.ge_u (local.get $p) (local.get $k)))
        (i32.store8 (i32.add (local.get $qr) (local.get $p))
          (i32.trunc_sat_f32_s (f32.nearest (f32.mul (f32.load (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $inv)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $l4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows))))

  ;; quant_u7 quantizes each row of x [m, k] asymmetrically to 7 unsigned
  ;; bits, the operand range of the relaxed int8 dot: with lo = min(row, 0),
  ;; hi = max(row, 0), s = (hi−lo)/127, z = nearest(−lo·(127/(hi−lo))),
  ;; q = clamp(nearest(x·(127/(hi−lo))) + z, 0, 127), so x ≈ s·(q − z). A
  ;; constant-zero row gets s = 0, z = 0, q = 0. Writes q to dst (stride ldd
  ;; bytes), s to sx[i] and z to zx[i].
  (func $quant_u7 (export "quant_u7")
    (param $dst i32) (param $ldd i32) (param $sx i32) (param $zx i32) (param $x i32) (param $ldx i32)
    (param $m i32) (param $k i32)
    (local $i i32) (local $xr i32) (local $qr i32) (local $p i32) (local $kb i32) (local $kv i32) (local $k16 i32) (local $z i32)
    (local $lo f32) (local $hi f32) (local $inv f32) (local $t f32)
    (local $vlo v128) (local $vhi v128) (local $v v128) (local $iv v128) (local $magic v128) (local $zv v128)
    (local.set $ldx (i32.shl (local.get $ldx) (i32.const 2)))
    (local.set $kb (i32.shl (local.get $k) (i32.const 2)))
    (local.set $kv (i32.and (local.get $kb) (i32.const -16)))
    (local.set $k16 (i32.and (local.get $k) (i32.const -16)))
    (local.set $magic (f32x4.splat (f32.const 12582912)))
    (block $end (loop $rows
      (br_if $end (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ldx))))
      (local.set $qr (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))))
      (local.set $vlo (v128.const i32x4 0 0 0 0))
      (local.set $vhi (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.const 0))
      ;; pmin/pmax are one instruction each (min/max with wasm's NaN and
      ;; ±0 rules are several): the range only differs for NaN inputs, and
      ;; a −0 kept as lo gives the same s, z and q as +0.
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $p) (local.get $kv)))
        (local.set $v (v128.load align=4 (i32.add (local.get $xr) (local.get $p))))
        (local.set $vlo (f32x4.pmin (local.get $vlo) (local.get $v)))
        (local.set $vhi (f32x4.pmax (local.get $vhi) (local.get $v)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l1)))
      (local.set $lo (f32.min (f32.min (f32x4.extract_lane 0 (local.get $vlo)) (f32x4.extract_lane 1 (local.get $vlo)))
                              (f32.min (f32x4.extract_lane 2 (local.get $vlo)) (f32x4.extract_lane 3 (local.get $vlo)))))
      (local.set $hi (f32.max (f32.max (f32x4.extract_lane 0 (local.get $vhi)) (f32x4.extract_lane 1 (local.get $vhi)))
                              (f32.max (f32x4.extract_lane 2 (local.get $vhi)) (f32x4.extract_lane 3 (local.get $vhi)))))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $p) (local.get $kb)))
        (local.set $t (f32.load (i32.add (local.get $xr) (local.get $p))))
        (local.set $lo (f32.min (local.get $lo) (local.get $t)))
        (local.set $hi (f32.max (local.get $hi) (local.get $t)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l2)))
      (local.set $t (f32.sub (local.get $hi) (local.get $lo)))
      (local.set $inv (f32.const 0))
      (local.set $z (i32.const 0))
      (if (f32.gt (local.get $t) (f32.const 0))
        (then
          (local.set $inv (f32.div (f32.const 127) (local.get $t)))
          (local.set $z (i32.trunc_sat_f32_s (f32.nearest (f32.mul (f32.neg (local.get $lo)) (local.get $inv)))))))
      (f32.store (i32.add (local.get $sx) (i32.shl (local.get $i) (i32.const 2))) (f32.div (local.get $t) (f32.const 127)))
      (i32.store (i32.add (local.get $zx) (i32.shl (local.get $i) (i32.const 2))) (local.get $z))
      (local.set $iv (f32x4.splat (local.get $inv)))
      ;; nearest(v) + z without a float → int conversion (several
      ;; instructions in V8): v + 1.5·2²³ rounds v to an integer, ties to
      ;; even, into the low mantissa bits (|v| ≤ 127 here), so its bits
      ;; minus those of 1.5·2²³ (0x4b400000) are nearest(v); z is
      ;; subtracted from that constant once per row. The sum lies in
      ;; [0, 128]: narrowing to unsigned bytes saturates below at 0, and
      ;; min_u trims the one rounding case of 128.
      (local.set $zv (i32x4.splat (i32.sub (i32.const 0x4b400000) (local.get $z))))
      (local.set $p (i32.const 0))
      (block $d3 (loop $l3
        (br_if $d3 (i32.ge_u (local.get $p) (local.get $k16)))
        (v128.store align=1 (i32.add (local.get $qr) (local.get $p))
          (i8x16.min_u (i8x16.splat (i32.const 127))
            (i8x16.narrow_i16x8_u
              (i16x8.narrow_i32x4_s
                (i32x4.sub (f32x4.add (f32x4.mul (v128.load align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv)) (local.get $magic)) (local.get $zv))
                (i32x4.sub (f32x4.add (f32x4.mul (v128.load offset=16 align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv)) (local.get $magic)) (local.get $zv)))
              (i16x8.narrow_i32x4_s
                (i32x4.sub (f32x4.add (f32x4.mul (v128.load offset=32 align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv)) (local.get $magic)) (local.get $zv))
                (i32x4.sub (f32x4.add (f32x4.mul (v128.load offset=48 align=4 (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $iv)) (local.get $magic)) (local.get $zv))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l3)))
      (block $d4 (loop $l4
        (br_if $d4 (i32.ge_u (local.get $p) (local.get $k)))
        (i32.store8 (i32.add (local.get $qr) (local.get $p))
          (call $min (i32.const 127)
            (i32.add (local.get $z)
              (i32.trunc_sat_f32_s (f32.nearest (f32.mul (f32.load (i32.add (local.get $xr) (i32.shl (local.get $p) (i32.const 2)))) (local.get $inv)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $l4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows))))

  ;; q4_to_i8 turns q4 weights [rows, cols] (blocks of 32 along a row, 16
  ;; bytes each in ggml's q4_0 order: byte j holds element j in its low
  ;; nibble and j+16 in its high nibble; one f32 scale per block,
  ;; w = scale·(q−8)) into int8 with one scale per row, the form the int8
  ;; GEMM takes: rs = 8·max|scale|/127, q8 = nearest((q−8)·(scale·127/(8·max|scale|))).
  ;; |q8| ≤ 127, and the block holding the row's largest scale converts
  ;; exactly. Writes q8 to dst [rows, cols] and rs to rowscale[r].
  (func $q4_to_i8 (export "q4_to_i8")
    (param $dst i32) (param $rowscale i32) (param $q4 i32) (param $scales i32)
    (param $rows i32) (param $cols i32)
    (local $r i32) (local $b i32) (local $nb i32) (local $sp i32) (local $src i32) (local $out i32)
    (local $smax f32) (local $inv f32) (local $f v128) (local $bytes v128) (local $h v128)
    (local.set $nb (i32.shr_u (local.get $cols) (i32.const 5)))
    (block $end (loop $rows
      (br_if $end (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $sp (i32.add (local.get $scales) (i32.shl (i32.mul (local.get $r) (local.get $nb)) (i32.const 2))))
      (local.set $smax (f32.const 0))
      (local.set $b (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_s (local.get $b) (local.get $nb)))
        (local.set $smax (f32.max (local.get $smax) (f32.abs (f32.load (i32.add (local.get $sp) (i32.shl (local.get $b) (i32.const 2)))))))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $l1)))
      (local.set $inv (f32.const 0))
      (if (f32.gt (local.get $smax) (f32.const 0))
        (then (local.set $inv (f32.div (f32.const 127) (f32.mul (local.get $smax) (f32.const 8))))))
      (f32.store (i32.add (local.get $rowscale) (i32.shl (local.get $r) (i32.const 2)))
                 (f32.div (f32.mul (local.get $smax) (f32.const 8)) (f32.const 127)))
      (local.set $b (i32.const 0))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_s (local.get $b) (local.get $nb)))
        (local.set $f (f32x4.splat (f32.mul (f32.load (i32.add (local.get $sp) (i32.shl (local.get $b) (i32.const 2)))) (local.get $inv))))
        (local.set $src (i32.add (local.get $q4) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $nb)) (local.get $b)) (i32.const 4))))
        (local.set $out (i32.add (local.get $dst) (i32.add (i32.mul (local.get $r) (local.get $cols)) (i32.shl (local.get $b) (i32.const 5)))))
        (local.set $bytes (v128.load align=1 (local.get $src)))
        ;; Low nibbles are elements 0..15, high nibbles 16..31; each minus 8.
        (local.set $h (i8x16.sub (v128.and (local.get $bytes) (i8x16.splat (i32.const 15))) (i8x16.splat (i32.const 8))))
        (v128.store align=1 (local.get $out) (call $scale_i8x16 (local.get $h) (local.get $f)))
        (local.set $h (i8x16.sub (i8x16.shr_u (local.get $bytes) (i32.const 4)) (i8x16.splat (i32.const 8))))
        (v128.store offset=16 align=1 (local.get $out) (call $scale_i8x16 (local.get $h) (local.get $f)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $l2)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows))))

  ;; $scale_i8x16 returns nearest(v·f) per lane for 16 small signed bytes v
  ;; and an f32 factor f (splat), saturated back to int8.
  (func $scale_i8x16 (param $v v128) (param $f v128) (result v128)
    (local $lo v128) (local $hi v128)
    (local.set $lo (i16x8.extend_low_i8x16_s (local.get $v)))
    (local.set $hi (i16x8.extend_high_i8x16_s (local.get $v)))
    (i8x16.narrow_i16x8_s
      (i16x8.narrow_i32x4_s
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $lo))) (local.get $f))))
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $lo))) (local.get $f)))))
      (i16x8.narrow_i32x4_s
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $hi))) (local.get $f))))
        (i32x4.trunc_sat_f32x4_s (f32x4.nearest (f32x4.mul (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $hi))) (local.get $f)))))))

  ;; i8_dequant: dst[r·cols + c] = scales[r]·f32(w[r·cols + c]) for
  ;; r < rows, c < cols, both dense: int8 weights widened to float32, one f32
  ;; multiply each (the value Go's Matrix.Row computes, bit for bit), for
  ;; the GEMMs that keep float32 activations (quantized convolutions widen
  ;; a block of output channels at a time). 8 weights per step, then the
  ;; last 0..7 one by one.
  (func $i8_dequant (export "i8_dequant")
    (param $dst i32) (param $w i32) (param $scales i32) (param $rows i32) (param $cols i32)
    (local $r i32) (local $c i32) (local $c8 i32) (local $s v128) (local $q v128) (local $d i32)
    (local.set $c8 (i32.and (local.get $cols) (i32.const -8)))
    (block $end (loop $rowloop
      (br_if $end (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $s (v128.load32_splat (i32.add (local.get $scales) (i32.shl (local.get $r) (i32.const 2)))))
      (local.set $c (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $c) (local.get $c8)))
        (local.set $q (v128.load8x8_s align=1 (i32.add (local.get $w) (local.get $c))))
        (local.set $d (i32.add (local.get $dst) (i32.shl (local.get $c) (i32.const 2))))
        (v128.store align=4 (local.get $d)
          (f32x4.mul (local.get $s) (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $q)))))
        (v128.store offset=16 align=4 (local.get $d)
          (f32x4.mul (local.get $s) (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $q)))))
        (local.set $c (i32.add (local.get $c) (i32.const 8)))
        (br $l1)))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $c) (local.get $cols)))
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $c) (i32.const 2)))
          (f32.mul (f32x4.extract_lane 0 (local.get $s)) (f32.convert_i32_s (i32.load8_s (i32.add (local.get $w) (local.get $c))))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $l2)))
      (local.set $w (i32.add (local.get $w) (local.get $cols)))
      (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $cols) (i32.const 2))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rowloop))))

  ;; i8_rowsums: dst[j] = Σ_p w[j·ldw + p] for j < n, p < k (i32). The
  ;; relaxed GEMM subtracts z·rowsum to undo its activations' zero point.
  (func $i8_rowsums (export "i8_rowsums")
    (param $dst i32) (param $w i32) (param $ldw i32) (param $n i32) (param $k i32)
    (local $j i32) (local $p i32) (local $wr i32) (local $k16 i32) (local $s i32) (local $v v128)
    (local.set $k16 (i32.and (local.get $k) (i32.const -16)))
    (block $end (loop $rows
      (br_if $end (i32.ge_s (local.get $j) (local.get $n)))
      (local.set $wr (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ldw))))
      (local.set $v (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $p) (local.get $k16)))
        (local.set $v (i32x4.add (local.get $v)
          (i32x4.extadd_pairwise_i16x8_s (i16x8.extadd_pairwise_i8x16_s (v128.load align=1 (i32.add (local.get $wr) (local.get $p)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l1)))
      (local.set $s (i32.add (i32.add (i32x4.extract_lane 0 (local.get $v)) (i32x4.extract_lane 1 (local.get $v)))
                             (i32.add (i32x4.extract_lane 2 (local.get $v)) (i32x4.extract_lane 3 (local.get $v)))))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $p) (local.get $k)))
        (local.set $s (i32.add (local.get $s) (i32.load8_s (i32.add (local.get $wr) (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $l2)))
      (i32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2))) (local.get $s))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $rows))))

  ;; i8_gemm: dst[i·ldd + j] = f32(Σ_p x[i·ldx + p]·w[j·ldw + p])·sw[j]·sx[i] + bias[j]
  ;; with x and w int8 (stride in bytes), the sum exact in i32, then the
  ;; float operations in exactly that order (bias = 0 means none). Same 2×4
  ;; tile and loop order as f32_gemm. Plain SIMD128 has no 8-bit multiply,
  ;; so each 8 bytes are sign-extended to i16 as they are loaded
  ;; (v128.load8x8_s) and multiplied pairwise into i32 by i32x4.dot_i16x8_s:
  ;; the weights stay int8 in memory, at no extra memory cost.
  (func $i8_gemm (export "i8_gemm")
    (param $dst i32) (param $ldd i32) (param $x i32) (param $ldx i32) (param $sx i32)
    (param $w i32) (param $ldw i32) (param $sw i32) (param $bias i32)
    (param $m i32) (param $n i32) (param $k i32)
    (local $j i32) (local $i i32) (local $cnt i32) (local $p i32) (local $rest i32)
    (local $kv i32) (local $k2 i32)
    (local $w0 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32)
    (local $x0 i32) (local $x1 i32) (local $d i32)
    (local $bv v128) (local $swv v128) (local $a0 v128) (local $a1 v128) (local $b v128) (local $r v128)
    (local $c00 v128) (local $c01 v128) (local $c02 v128) (local $c03 v128)
    (local $c10 v128) (local $c11 v128) (local $c12 v128) (local $c13 v128)
    (local.set $ldd (i32.shl (local.get $ldd) (i32.const 2)))
    (local.set $kv (i32.and (local.get $k) (i32.const -8)))
    (local.set $k2 (i32.and (local.get $k) (i32.const -16)))
    (loop $cols
      (local.set $cnt (call $min (i32.const 4) (i32.sub (local.get $n) (local.get $j))))
      (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ldw))))
      (local.set $w1 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 1)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $w2 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 2)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $w3 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 3)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $swv (if (result v128) (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.load align=4 (i32.add (local.get $sw) (i32.shl (local.get $j) (i32.const 2))))) (else (call $load4s (i32.add (local.get $sw) (i32.shl (local.get $j) (i32.const 2))) (local.get $cnt)))))
      (local.set $bv (v128.const i32x4 0 0 0 0))
      (if (local.get $bias)
        (then (local.set $bv (if (result v128) (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.load align=4 (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))))) (else (call $load4s (i32.add (local.get $bias) (i32.shl (local.get $j) (i32.const 2))) (local.get $cnt)))))))
      (local.set $i (i32.const 0))
      (loop $rows
        (local.set $x0 (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ldx))))
        (local.set $x1 (i32.add (local.get $x) (i32.mul (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))) (local.get $ldx))))
        (local.set $c00 (v128.const i32x4 0 0 0 0)) (local.set $c01 (v128.const i32x4 0 0 0 0))
        (local.set $c02 (v128.const i32x4 0 0 0 0)) (local.set $c03 (v128.const i32x4 0 0 0 0))
        (local.set $c10 (v128.const i32x4 0 0 0 0)) (local.set $c11 (v128.const i32x4 0 0 0 0))
        (local.set $c12 (v128.const i32x4 0 0 0 0)) (local.set $c13 (v128.const i32x4 0 0 0 0))
        (local.set $p (i32.const 0))
        ;; Main loop: 16 bytes of k per iteration, two 8-byte steps.
        (block $k2done
          (loop $k2loop
            (br_if $k2done (i32.ge_u (local.get $p) (local.get $k2)))
            (local.set $a0 (v128.load8x8_s align=1 (i32.add (local.get $x0) (local.get $p))))
            (local.set $a1 (v128.load8x8_s align=1 (i32.add (local.get $x1) (local.get $p))))
            (local.set $b (v128.load8x8_s align=1 (i32.add (local.get $w0) (local.get $p))))
            (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $b (v128.load8x8_s align=1 (i32.add (local.get $w1) (local.get $p))))
            (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $b (v128.load8x8_s align=1 (i32.add (local.get $w2) (local.get $p))))
            (local.set $c02 (i32x4.add (local.get $c02) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c12 (i32x4.add (local.get $c12) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $b (v128.load8x8_s align=1 (i32.add (local.get $w3) (local.get $p))))
            (local.set $c03 (i32x4.add (local.get $c03) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c13 (i32x4.add (local.get $c13) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $a0 (v128.load8x8_s offset=8 align=1 (i32.add (local.get $x0) (local.get $p))))
            (local.set $a1 (v128.load8x8_s offset=8 align=1 (i32.add (local.get $x1) (local.get $p))))
            (local.set $b (v128.load8x8_s offset=8 align=1 (i32.add (local.get $w0) (local.get $p))))
            (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $b (v128.load8x8_s offset=8 align=1 (i32.add (local.get $w1) (local.get $p))))
            (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $b (v128.load8x8_s offset=8 align=1 (i32.add (local.get $w2) (local.get $p))))
            (local.set $c02 (i32x4.add (local.get $c02) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c12 (i32x4.add (local.get $c12) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $b (v128.load8x8_s offset=8 align=1 (i32.add (local.get $w3) (local.get $p))))
            (local.set $c03 (i32x4.add (local.get $c03) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
            (local.set $c13 (i32x4.add (local.get $c13) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
            (local.set $p (i32.add (local.get $p) (i32.const 16)))
            (br $k2loop)))
        ;; At most one more 8-byte step, then a partial one (1..7 bytes,
        ;; zero filled).
        (local.set $rest (i32.const 8))
        (loop $ktail
          (if (i32.lt_u (local.get $p) (local.get $k))
            (then
              (if (i32.ge_u (local.get $p) (local.get $kv))
                (then (local.set $rest (i32.sub (local.get $k) (local.get $p)))))
              (local.set $a0 (i16x8.extend_low_i8x16_s (call $load_bytes (i32.add (local.get $x0) (local.get $p)) (local.get $rest))))
              (local.set $a1 (i16x8.extend_low_i8x16_s (call $load_bytes (i32.add (local.get $x1) (local.get $p)) (local.get $rest))))
              (local.set $b (i16x8.extend_low_i8x16_s (call $load_bytes (i32.add (local.get $w0) (local.get $p)) (local.get $rest))))
              (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
              (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
              (local.set $b (i16x8.extend_low_i8x16_s (call $load_bytes (i32.add (local.get $w1) (local.get $p)) (local.get $rest))))
              (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
              (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
              (local.set $b (i16x8.extend_low_i8x16_s (call $load_bytes (i32.add (local.get $w2) (local.get $p)) (local.get $rest))))
              (local.set $c02 (i32x4.add (local.get $c02) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
              (local.set $c12 (i32x4.add (local.get $c12) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
              (local.set $b (i16x8.extend_low_i8x16_s (call $load_bytes (i32.add (local.get $w3) (local.get $p)) (local.get $rest))))
              (local.set $c03 (i32x4.add (local.get $c03) (i32x4.dot_i16x8_s (local.get $a0) (local.get $b))))
              (local.set $c13 (i32x4.add (local.get $c13) (i32x4.dot_i16x8_s (local.get $a1) (local.get $b))))
              (local.set $p (i32.add (local.get $p) (i32.const 8)))
              (br $ktail))))
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $r (f32x4.add (f32x4.mul (f32x4.mul
                          (f32x4.convert_i32x4_s (call $hsum4_i32 (local.get $c00) (local.get $c01) (local.get $c02) (local.get $c03)))
                          (local.get $swv))
                        (v128.load32_splat (i32.add (local.get $sx) (i32.shl (local.get $i) (i32.const 2)))))
                      (local.get $bv)))
        (if (i32.eq (local.get $cnt) (i32.const 4))
          (then (v128.store align=4 (local.get $d) (local.get $r)))
          (else (call $store4s (local.get $d) (local.get $r) (local.get $cnt))))
        (local.set $i (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))))
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $r (f32x4.add (f32x4.mul (f32x4.mul
                          (f32x4.convert_i32x4_s (call $hsum4_i32 (local.get $c10) (local.get $c11) (local.get $c12) (local.get $c13)))
                          (local.get $swv))
                        (v128.load32_splat (i32.add (local.get $sx) (i32.shl (local.get $i) (i32.const 2)))))
                      (local.get $bv)))
        (if (i32.eq (local.get $cnt) (i32.const 4))
          (then (v128.store align=4 (local.get $d) (local.get $r)))
          (else (call $store4s (local.get $d) (local.get $r) (local.get $cnt))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $rows (i32.lt_s (local.get $i) (local.get $m))))
      (local.set $j (i32.add (local.get $j) (i32.const 4)))
      (br_if $cols (i32.lt_s (local.get $j) (local.get $n)))))

  ;; ---------------------------------------------------------------------
  ;; Row and elementwise ops
  ;; ---------------------------------------------------------------------

  ;; layernorm: for each of m rows of x [m, n] (dense), dst = (x−mean)·inv·
  ;; gamma + beta with inv = 1/sqrt(var+eps). Mean and variance accumulate
  ;; in f64 over two passes (as the portable backend does), which keeps the
  ;; variance accurate for the residual stream's rows with a large mean;
  ;; the output pass is f32. dst may equal x.
  (func $layernorm (export "layernorm")
    (param $dst i32) (param $x i32) (param $gamma i32) (param $beta i32)
    (param $m i32) (param $n i32) (param $eps f32)
    (local $i i32) (local $p i32) (local $xr i32) (local $dr i32) (local $nb i32) (local $nv i32)
    (local $sum f64) (local $mean f64) (local $inv f64) (local $t f64)
    (local $s0 v128) (local $s1 v128) (local $v v128) (local $mv v128) (local $iv v128)
    (local.set $nb (i32.shl (local.get $n) (i32.const 2)))
    (local.set $nv (i32.and (local.get $nb) (i32.const -16)))
    (block $end (loop $rows
      (br_if $end (i32.ge_s (local.get $i) (local.get $m)))
      (local.set $xr (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $nb))))
      (local.set $dr (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $nb))))
      ;; mean
      (local.set $s0 (v128.const i32x4 0 0 0 0))
      (local.set $s1 (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $p) (local.get $nv)))
        (local.set $v (v128.load align=4 (i32.add (local.get $xr) (local.get $p))))
        (local.set $s0 (f64x2.add (local.get $s0) (f64x2.promote_low_f32x4 (local.get $v))))
        (local.set $s1 (f64x2.add (local.get $s1) (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l1)))
      (local.set $s0 (f64x2.add (local.get $s0) (local.get $s1)))
      (local.set $sum (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $p) (local.get $nb)))
        (local.set $sum (f64.add (local.get $sum) (f64.promote_f32 (f32.load (i32.add (local.get $xr) (local.get $p))))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l2)))
      (local.set $mean (f64.div (local.get $sum) (f64.convert_i32_s (local.get $n))))
      ;; variance around the mean
      (local.set $mv (f64x2.splat (local.get $mean)))
      (local.set $s0 (v128.const i32x4 0 0 0 0))
      (local.set $s1 (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.const 0))
      (block $d3 (loop $l3
        (br_if $d3 (i32.ge_u (local.get $p) (local.get $nv)))
        (local.set $v (v128.load align=4 (i32.add (local.get $xr) (local.get $p))))
        (local.set $iv (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (local.get $mv)))
        (local.set $s0 (f64x2.add (local.get $s0) (f64x2.mul (local.get $iv) (local.get $iv))))
        (local.set $iv (f64x2.sub (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))) (local.get $mv)))
        (local.set $s1 (f64x2.add (local.get $s1) (f64x2.mul (local.get $iv) (local.get $iv))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l3)))
      (local.set $s0 (f64x2.add (local.get $s0) (local.get $s1)))
      (local.set $sum (f64.add (f64x2.extract_lane 0 (local.get $s0)) (f64x2.extract_lane 1 (local.get $s0))))
      (block $d4 (loop $l4
        (br_if $d4 (i32.ge_u (local.get $p) (local.get $nb)))
        (local.set $t (f64.sub (f64.promote_f32 (f32.load (i32.add (local.get $xr) (local.get $p)))) (local.get $mean)))
        (local.set $sum (f64.add (local.get $sum) (f64.mul (local.get $t) (local.get $t))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l4)))
      (local.set $inv (f64.div (f64.const 1)
        (f64.sqrt (f64.add (f64.div (local.get $sum) (f64.convert_i32_s (local.get $n))) (f64.promote_f32 (local.get $eps))))))
      ;; normalise, scale, shift
      (local.set $mv (f32x4.splat (f32.demote_f64 (local.get $mean))))
      (local.set $iv (f32x4.splat (f32.demote_f64 (local.get $inv))))
      (local.set $p (i32.const 0))
      (block $d5 (loop $l5
        (br_if $d5 (i32.ge_u (local.get $p) (local.get $nv)))
        (v128.store align=4 (i32.add (local.get $dr) (local.get $p))
          (f32x4.add
            (f32x4.mul
              (f32x4.mul (f32x4.sub (v128.load align=4 (i32.add (local.get $xr) (local.get $p))) (local.get $mv)) (local.get $iv))
              (v128.load align=4 (i32.add (local.get $gamma) (local.get $p))))
            (v128.load align=4 (i32.add (local.get $beta) (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l5)))
      (block $d6 (loop $l6
        (br_if $d6 (i32.ge_u (local.get $p) (local.get $nb)))
        (f32.store (i32.add (local.get $dr) (local.get $p))
          (f32.add
            (f32.mul
              (f32.mul (f32.sub (f32.load (i32.add (local.get $xr) (local.get $p))) (f32x4.extract_lane 0 (local.get $mv))) (f32x4.extract_lane 0 (local.get $iv)))
              (f32.load (i32.add (local.get $gamma) (local.get $p))))
            (f32.load (i32.add (local.get $beta) (local.get $p)))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l6)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows))))

  ;; softmax_rows: for each of rows rows of x (stride ld floats) replaces the
  ;; first len values by softmax(scale·x) and zeros the rest up to n, where
  ;; len = n, or min(i+1, n) for row i when causal ≠ 0 (attention's causal
  ;; mask: query i sees keys 0..i). The probabilities then feed
  ;; f32_gemm_nn with values as the right operand.
  (func $softmax_rows (export "softmax_rows")
    (param $x i32) (param $ld i32) (param $rows i32) (param $n i32) (param $scale f32) (param $causal i32)
    (local $i i32) (local $len i32) (local $row i32) (local $p i32) (local $vb i32) (local $eb i32) (local $cnt i32)
    (local $mx f32) (local $total f32)
    (local $sv v128) (local $mv v128) (local $acc v128) (local $e v128)
    (local $lo v128) (local $hi v128) (local $log2e v128) (local $half v128) (local $ln2hi v128) (local $ln2lo v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $c4 v128) (local $c5 v128) (local $one v128) (local $bias v128)
    (call $exp_consts)
    (local.set $bias) (local.set $one) (local.set $c5) (local.set $c4) (local.set $c3) (local.set $c2) (local.set $c1)
    (local.set $c0) (local.set $ln2lo) (local.set $ln2hi) (local.set $half) (local.set $log2e) (local.set $hi) (local.set $lo)
    (local.set $ld (i32.shl (local.get $ld) (i32.const 2)))
    (local.set $sv (f32x4.splat (local.get $scale)))
    (block $end (loop $rowsl
      (br_if $end (i32.ge_s (local.get $i) (local.get $rows)))
      (local.set $row (i32.add (local.get $x) (i32.mul (local.get $i) (local.get $ld))))
      (local.set $len (local.get $n))
      (if (local.get $causal)
        (then (local.set $len (call $min (i32.add (local.get $i) (i32.const 1)) (local.get $n)))))
      (local.set $eb (i32.shl (local.get $len) (i32.const 2)))
      (local.set $vb (i32.and (local.get $eb) (i32.const -16)))
      (local.set $cnt (i32.shr_u (i32.sub (local.get $eb) (local.get $vb)) (i32.const 2)))
      ;; max of scale·x (pmax: one instruction; wasm's max adds NaN and ±0
      ;; handling that a NaN score would not survive anyway)
      (local.set $mv (v128.const f32x4 -inf -inf -inf -inf))
      (local.set $p (i32.const 0))
      (block $d1 (loop $l1
        (br_if $d1 (i32.ge_u (local.get $p) (local.get $vb)))
        (local.set $mv (f32x4.pmax (local.get $mv) (f32x4.mul (v128.load align=4 (i32.add (local.get $row) (local.get $p))) (local.get $sv))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l1)))
      (local.set $mx (f32.max (f32.max (f32x4.extract_lane 0 (local.get $mv)) (f32x4.extract_lane 1 (local.get $mv)))
                              (f32.max (f32x4.extract_lane 2 (local.get $mv)) (f32x4.extract_lane 3 (local.get $mv)))))
      (block $d2 (loop $l2
        (br_if $d2 (i32.ge_u (local.get $p) (local.get $eb)))
        (local.set $mx (f32.max (local.get $mx) (f32.mul (f32.load (i32.add (local.get $row) (local.get $p))) (local.get $scale))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $l2)))
      (local.set $mv (f32x4.splat (local.get $mx)))
      ;; e = exp(scale·x − max), stored, and summed
      (local.set $acc (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.const 0))
      (block $d3 (loop $l3
        (br_if $d3 (i32.ge_u (local.get $p) (local.get $vb)))
        (local.set $e (call $exp4k (f32x4.sub (f32x4.mul (v128.load align=4 (i32.add (local.get $row) (local.get $p))) (local.get $sv)) (local.get $mv))
          (local.get $lo) (local.get $hi) (local.get $log2e) (local.get $half) (local.get $ln2hi) (local.get $ln2lo) (local.get $c0) (local.get $c1) (local.get $c2) (local.get $c3) (local.get $c4) (local.get $c5) (local.get $one) (local.get $bias)))
        (v128.store align=4 (i32.add (local.get $row) (local.get $p)) (local.get $e))
        (local.set $acc (f32x4.add (local.get $acc) (local.get $e)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l3)))
      (if (local.get $cnt)
        (then
          (local.set $e (call $exp4k (f32x4.sub (f32x4.mul (call $load4s (i32.add (local.get $row) (local.get $p)) (local.get $cnt)) (local.get $sv)) (local.get $mv))
            (local.get $lo) (local.get $hi) (local.get $log2e) (local.get $half) (local.get $ln2hi) (local.get $ln2lo) (local.get $c0) (local.get $c1) (local.get $c2) (local.get $c3) (local.get $c4) (local.get $c5) (local.get $one) (local.get $bias)))
          (call $store4s (i32.add (local.get $row) (local.get $p)) (local.get $e) (local.get $cnt))
          ;; the zero-filled lanes became exp(−max): keep them out of the sum
          (local.set $acc (f32x4.add (local.get $acc) (v128.and (local.get $e) (call $lanes_below (local.get $cnt)))))))
      (local.set $total (f32.add (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))
                                 (f32.add (f32x4.extract_lane 2 (local.get $acc)) (f32x4.extract_lane 3 (local.get $acc)))))
      ;; normalise
      (local.set $mv (f32x4.splat (f32.div (f32.const 1) (local.get $total))))
      (local.set $p (i32.const 0))
      (block $d4 (loop $l4
        (br_if $d4 (i32.ge_u (local.get $p) (local.get $vb)))
        (v128.store align=4 (i32.add (local.get $row) (local.get $p))
          (f32x4.mul (v128.load align=4 (i32.add (local.get $row) (local.get $p))) (local.get $mv)))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $l4)))
      (if (local.get $cnt)
        (then (call $store4s (i32.add (local.get $row) (local.get $p))
          (f32x4.mul (call $load4s (i32.add (local.get $row) (local.get $p)) (local.get $cnt)) (local.get $mv))
          (local.get $cnt))))
      (memory.fill (i32.add (local.get $row) (local.get $eb)) (i32.const 0)
                   (i32.shl (i32.sub (local.get $n) (local.get $len)) (i32.const 2)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rowsl))))

  ;; gelu: x = x·Φ(x) = 0.5·x·(1 + erf(x/√2)) in place over n floats, n a
  ;; multiple of 4 (the Go side runs a tail through a 4-float buffer), the
  ;; exact GELU of OpenCLIP's models. erf(z) is the rational approximation
  ;; z·P(z²)/Q(z²) on [−4, 4] used by Eigen and XLA (beyond, erf is ±1 to
  ;; float32 precision): against math.Erf on a 1e-5 grid of [−6, 6] it is
  ;; within 4.3e-7 absolute, and this GELU within 1.4e-6 of float64 for
  ;; |x| ≤ 8 (TestGELUAccuracy). The constants are locals set before the
  ;; loop (see "Constants in loops"), and the body is written inline: as a
  ;; helper with its 17 constants as parameters V8 did not inline it, and
  ;; the call made the kernel 2.4× slower.
  (func $gelu (export "gelu") (param $p i32) (param $n i32)
    (local $end i32) (local $x v128) (local $z v128) (local $z2 v128) (local $num v128) (local $den v128)
    (local $rsqrt2 v128) (local $nlim v128) (local $lim v128) (local $half v128) (local $one v128)
    (local $a1 v128) (local $a3 v128) (local $a5 v128) (local $a7 v128) (local $a9 v128) (local $a11 v128) (local $a13 v128)
    (local $b0 v128) (local $b2 v128) (local $b4 v128) (local $b6 v128) (local $b8 v128)
    (local.set $rsqrt2 (f32x4.splat (f32.const 0.7071067811865476)))
    (local.set $nlim (f32x4.splat (f32.const -4)))
    (local.set $lim (f32x4.splat (f32.const 4)))
    (local.set $half (f32x4.splat (f32.const 0.5)))
    (local.set $one (f32x4.splat (f32.const 1)))
    (local.set $a1 (f32x4.splat (f32.const -1.60960333262415e-02)))
    (local.set $a3 (f32x4.splat (f32.const -2.95459980854025e-03)))
    (local.set $a5 (f32x4.splat (f32.const -7.34990630326855e-04)))
    (local.set $a7 (f32x4.splat (f32.const -5.69250639462346e-05)))
    (local.set $a9 (f32x4.splat (f32.const -2.10102402082508e-06)))
    (local.set $a11 (f32x4.splat (f32.const 2.77068142495902e-08)))
    (local.set $a13 (f32x4.splat (f32.const -2.72614225801306e-10)))
    (local.set $b0 (f32x4.splat (f32.const -1.42647390514189e-02)))
    (local.set $b2 (f32x4.splat (f32.const -7.37332916720468e-03)))
    (local.set $b4 (f32x4.splat (f32.const -1.68282697438203e-03)))
    (local.set $b6 (f32x4.splat (f32.const -2.13374055278905e-04)))
    (local.set $b8 (f32x4.splat (f32.const -1.45660718464996e-05)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $x (v128.load align=4 (local.get $p)))
      ;; z = x/√2 clamped to [−4, 4]; erf(z) = z·P(z²)/Q(z²)
      (local.set $z (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $x) (local.get $rsqrt2)) (local.get $nlim)) (local.get $lim)))
      (local.set $z2 (f32x4.mul (local.get $z) (local.get $z)))
      (local.set $num (f32x4.add (f32x4.mul (local.get $a13) (local.get $z2)) (local.get $a11)))
      (local.set $num (f32x4.add (f32x4.mul (local.get $num) (local.get $z2)) (local.get $a9)))
      (local.set $num (f32x4.add (f32x4.mul (local.get $num) (local.get $z2)) (local.get $a7)))
      (local.set $num (f32x4.add (f32x4.mul (local.get $num) (local.get $z2)) (local.get $a5)))
      (local.set $num (f32x4.add (f32x4.mul (local.get $num) (local.get $z2)) (local.get $a3)))
      (local.set $num (f32x4.add (f32x4.mul (local.get $num) (local.get $z2)) (local.get $a1)))
      (local.set $den (f32x4.add (f32x4.mul (local.get $b8) (local.get $z2)) (local.get $b6)))
      (local.set $den (f32x4.add (f32x4.mul (local.get $den) (local.get $z2)) (local.get $b4)))
      (local.set $den (f32x4.add (f32x4.mul (local.get $den) (local.get $z2)) (local.get $b2)))
      (local.set $den (f32x4.add (f32x4.mul (local.get $den) (local.get $z2)) (local.get $b0)))
      (v128.store align=4 (local.get $p) (f32x4.mul (f32x4.mul (local.get $x) (local.get $half))
        (f32x4.add (local.get $one) (f32x4.div (f32x4.mul (local.get $num) (local.get $z)) (local.get $den)))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $l))))

  ;; quickgelu: x = x·sigmoid(1.702·x) = x / (1 + e**(−1.702·x)) in place
  ;; over n floats, n a multiple of 4 as for gelu. The exponential is
  ;; $exp4k's, written out: whether V8 inlined the call here changed with
  ;; unrelated edits elsewhere in the module, at 1.8× the time when not.
  (func $quickgelu (export "quickgelu") (param $p i32) (param $n i32)
    (local $end i32) (local $x v128) (local $t v128) (local $fn v128) (local $r v128) (local $q v128) (local $k v128)
    (local $lo v128) (local $hi v128) (local $log2e v128) (local $half v128) (local $ln2hi v128) (local $ln2lo v128)
    (local $c0 v128) (local $c1 v128) (local $c2 v128) (local $c3 v128) (local $c4 v128) (local $c5 v128) (local $one v128) (local $bias v128)
    (call $exp_consts)
    (local.set $bias) (local.set $one) (local.set $c5) (local.set $c4) (local.set $c3) (local.set $c2) (local.set $c1)
    (local.set $c0) (local.set $ln2lo) (local.set $ln2hi) (local.set $half) (local.set $log2e) (local.set $hi) (local.set $lo)
    (local.set $k (f32x4.splat (f32.const -1.702)))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $x (v128.load align=4 (local.get $p)))
      ;; t = e**(−1.702·x) as in $exp4k
      (local.set $t (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $x) (local.get $k)) (local.get $lo)) (local.get $hi)))
      (local.set $fn (f32x4.floor (f32x4.add (f32x4.mul (local.get $t) (local.get $log2e)) (local.get $half))))
      (local.set $r (f32x4.sub (f32x4.sub (local.get $t) (f32x4.mul (local.get $fn) (local.get $ln2hi)))
                               (f32x4.mul (local.get $fn) (local.get $ln2lo))))
      (local.set $q (f32x4.add (f32x4.mul (local.get $c0) (local.get $r)) (local.get $c1)))
      (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (local.get $c2)))
      (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (local.get $c3)))
      (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (local.get $c4)))
      (local.set $q (f32x4.add (f32x4.mul (local.get $q) (local.get $r)) (local.get $c5)))
      (local.set $t (f32x4.mul
        (f32x4.add (f32x4.add (f32x4.mul (f32x4.mul (local.get $q) (local.get $r)) (local.get $r)) (local.get $r)) (local.get $one))
        (i32x4.shl (f32x4.add (local.get $fn) (local.get $bias)) (i32.const 23))))
      (v128.store align=4 (local.get $p) (f32x4.div (local.get $x) (f32x4.add (local.get $one) (local.get $t))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $l))))

  ;; relu: x = max(x, 0) in place over n floats. pmax(x, 0) is x < 0 ? 0 : x,
  ;; one instruction, and keeps NaN (−0 stays −0, which compares equal).
  (func $relu (export "relu") (param $p i32) (param $n i32)
    (local $vend i32) (local $end i32)
    (local.set $vend (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $p) (local.get $vend)))
      (v128.store align=4 (local.get $p) (f32x4.pmax (v128.load align=4 (local.get $p)) (v128.const i32x4 0 0 0 0)))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br $l)))
    (block $d2 (loop $l2
      (br_if $d2 (i32.ge_u (local.get $p) (local.get $end)))
      (f32.store (local.get $p) (f32.max (f32.load (local.get $p)) (f32.const 0)))
      (local.set $p (i32.add (local.get $p) (i32.const 4)))
      (br $l2))))

  ;; add: dst[i] += src[i] for i < n (residual connections).
  (func $add (export "add") (param $dst i32) (param $src i32) (param $n i32)
    (local $vend i32) (local $end i32)
    (local.set $vend (i32.add (local.get $dst) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $n) (i32.const 2))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $dst) (local.get $vend)))
      (v128.store align=4 (local.get $dst) (f32x4.add (v128.load align=4 (local.get $dst)) (v128.load align=4 (local.get $src))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (br $l)))
    (block $d2 (loop $l2
      (br_if $d2 (i32.ge_u (local.get $dst) (local.get $end)))
      (f32.store (local.get $dst) (f32.add (f32.load (local.get $dst)) (f32.load (local.get $src))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (local.set $src (i32.add (local.get $src) (i32.const 4)))
      (br $l2))))
)
