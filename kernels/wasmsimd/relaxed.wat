;; relaxed.wat — the relaxed-SIMD kernels of package wasmsimd.
;;
;; A separate module from simd128.wat because a browser without relaxed SIMD
;; rejects the whole module that uses it; the glue (glue.mjs) loads this one
;; only where a tiny relaxed module validates, and the Go side uses it only
;; if its known-answer self-test passes (a runtime may accept the opcodes
;; and still compute them wrongly, as Node 20's baseline compiler does for
;; the int8 dot). Same memory import, pointer and stride conventions and
;; tile shapes as simd128.wat; see there. The helpers below are copies of
;; simd128.wat's: a call into another instance cannot be inlined and would
;; cost a few ns per tile.
(module
  (import "env" "mem" (memory 1))

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

  ;; f32_gemm_relaxed is f32_gemm (simd128.wat) with each multiply-add
  ;; fused by f32x4.relaxed_madd: one FMA where the CPU has it (x64 with
  ;; FMA3, arm64), mul+add elsewhere, so results may differ from f32_gemm
  ;; in the last bits.
  (func $f32_gemm_relaxed (export "f32_gemm_relaxed")
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
            (local.set $c00 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c00)))
            (local.set $c10 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c10)))
            (local.set $b (v128.load align=4 (i32.add (local.get $w1) (local.get $p))))
            (local.set $c01 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c01)))
            (local.set $c11 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c11)))
            (local.set $b (v128.load align=4 (i32.add (local.get $w2) (local.get $p))))
            (local.set $c02 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c02)))
            (local.set $c12 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c12)))
            (local.set $b (v128.load align=4 (i32.add (local.get $w3) (local.get $p))))
            (local.set $c03 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c03)))
            (local.set $c13 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c13)))
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
            (local.set $c00 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c00)))
            (local.set $c10 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c10)))
            (local.set $b (call $load4s (i32.add (local.get $w1) (local.get $p)) (local.get $rest)))
            (local.set $c01 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c01)))
            (local.set $c11 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c11)))
            (local.set $b (call $load4s (i32.add (local.get $w2) (local.get $p)) (local.get $rest)))
            (local.set $c02 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c02)))
            (local.set $c12 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c12)))
            (local.set $b (call $load4s (i32.add (local.get $w3) (local.get $p)) (local.get $rest)))
            (local.set $c03 (f32x4.relaxed_madd (local.get $a0) (local.get $b) (local.get $c03)))
            (local.set $c13 (f32x4.relaxed_madd (local.get $a1) (local.get $b) (local.get $c13)))))
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

  ;; i8_gemm_relaxed: dst[i·ldd + j] =
  ;;   f32(Σ_p x[i·ldx + p]·w[j·ldw + p] − zx[i]·wsum[j])·sw[j]·sx[i] + bias[j]
  ;; with x unsigned 7-bit (0..127, from quant_u7, zero point zx[i]) and w
  ;; signed int8, wsum[j] = Σ_p w[j·ldw + p] (from i8_rowsums), the integer
  ;; part exact in i32 and the float operations in exactly that order
  ;; (bias = 0 means none). i16x8.relaxed_dot_i8x16_i7x16_s (spelled
  ;; i16x8.dot_i8x16_i7x16_s by wabt 1.0.32) multiplies 16 byte pairs and
  ;; adds neighbours into i16 lanes; it is only deterministic when its
  ;; second operand has the top bit clear, which is why the activations,
  ;; not the weights, give up a bit: a weight keeps its 8 bits of the
  ;; shard, and the pairwise sums (≤ 2·128·127) cannot saturate. Then
  ;; i32x4.dot_i16x8_s with a vector of ones adds neighbouring i16 lanes
  ;; into i32. That is what i32x4.relaxed_dot_i8x16_i7x16_add_s computes,
  ;; but V8 on x64 without AVX-VNNI lowers that instruction to five vector
  ;; ops, two of them rebuilding the ones vector at every dot
  ;; (vpcmpeqd, vpsrlw, vpmaddubsw, vpmaddwd, vpaddd); with the ones in a
  ;; local it is three, and the GEMM is 1.23× faster (81.9 against 66.6
  ;; GOP/s on the MLP shape, Chromium 156, AMD EPYC). Where the CPU has
  ;; AVX-VNNI, V8 lowers the fused instruction to one vpdpbusd, which
  ;; would beat these three; no such CPU was at hand to measure, and
  ;; choosing between the two forms at start-up by timing is the way to
  ;; have both. Same 2×4 tile and loop order as f32_gemm.
  (func $i8_gemm_relaxed (export "i8_gemm_relaxed")
    (param $dst i32) (param $ldd i32) (param $x i32) (param $ldx i32) (param $sx i32) (param $zx i32)
    (param $w i32) (param $ldw i32) (param $sw i32) (param $wsum i32) (param $bias i32)
    (param $m i32) (param $n i32) (param $k i32)
    (local $j i32) (local $i i32) (local $cnt i32) (local $p i32) (local $rest i32)
    (local $kv i32) (local $k2 i32)
    (local $w0 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32)
    (local $x0 i32) (local $x1 i32) (local $d i32)
    (local $bv v128) (local $swv v128) (local $wsv v128) (local $a0 v128) (local $a1 v128) (local $b v128) (local $r v128)
    (local $c00 v128) (local $c01 v128) (local $c02 v128) (local $c03 v128)
    (local $c10 v128) (local $c11 v128) (local $c12 v128) (local $c13 v128)
    (local $ones v128)
    (local.set $ones (v128.const i16x8 1 1 1 1 1 1 1 1))
    (local.set $ldd (i32.shl (local.get $ldd) (i32.const 2)))
    (local.set $kv (i32.and (local.get $k) (i32.const -16)))
    (local.set $k2 (i32.and (local.get $k) (i32.const -32)))
    (loop $cols
      (local.set $cnt (call $min (i32.const 4) (i32.sub (local.get $n) (local.get $j))))
      (local.set $w0 (i32.add (local.get $w) (i32.mul (local.get $j) (local.get $ldw))))
      (local.set $w1 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 1)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $w2 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 2)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $w3 (i32.add (local.get $w) (i32.mul (call $min (i32.add (local.get $j) (i32.const 3)) (i32.sub (local.get $n) (i32.const 1))) (local.get $ldw))))
      (local.set $swv (if (result v128) (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.load align=4 (i32.add (local.get $sw) (i32.shl (local.get $j) (i32.const 2))))) (else (call $load4s (i32.add (local.get $sw) (i32.shl (local.get $j) (i32.const 2))) (local.get $cnt)))))
      (local.set $wsv (if (result v128) (i32.eq (local.get $cnt) (i32.const 4)) (then (v128.load align=4 (i32.add (local.get $wsum) (i32.shl (local.get $j) (i32.const 2))))) (else (call $load4s (i32.add (local.get $wsum) (i32.shl (local.get $j) (i32.const 2))) (local.get $cnt)))))
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
        ;; Main loop: 32 bytes of k per iteration, two 16-byte steps.
        (block $k2done
          (loop $k2loop
            (br_if $k2done (i32.ge_u (local.get $p) (local.get $k2)))
            (local.set $a0 (v128.load align=1 (i32.add (local.get $x0) (local.get $p))))
            (local.set $a1 (v128.load align=1 (i32.add (local.get $x1) (local.get $p))))
            (local.set $b (v128.load align=1 (i32.add (local.get $w0) (local.get $p))))
            (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $b (v128.load align=1 (i32.add (local.get $w1) (local.get $p))))
            (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $b (v128.load align=1 (i32.add (local.get $w2) (local.get $p))))
            (local.set $c02 (i32x4.add (local.get $c02) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c12 (i32x4.add (local.get $c12) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $b (v128.load align=1 (i32.add (local.get $w3) (local.get $p))))
            (local.set $c03 (i32x4.add (local.get $c03) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c13 (i32x4.add (local.get $c13) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $a0 (v128.load offset=16 align=1 (i32.add (local.get $x0) (local.get $p))))
            (local.set $a1 (v128.load offset=16 align=1 (i32.add (local.get $x1) (local.get $p))))
            (local.set $b (v128.load offset=16 align=1 (i32.add (local.get $w0) (local.get $p))))
            (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $b (v128.load offset=16 align=1 (i32.add (local.get $w1) (local.get $p))))
            (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $b (v128.load offset=16 align=1 (i32.add (local.get $w2) (local.get $p))))
            (local.set $c02 (i32x4.add (local.get $c02) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c12 (i32x4.add (local.get $c12) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $b (v128.load offset=16 align=1 (i32.add (local.get $w3) (local.get $p))))
            (local.set $c03 (i32x4.add (local.get $c03) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
            (local.set $c13 (i32x4.add (local.get $c13) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
            (local.set $p (i32.add (local.get $p) (i32.const 32)))
            (br $k2loop)))
        ;; At most one more 16-byte step, then a partial one (1..15 bytes,
        ;; zero filled).
        (local.set $rest (i32.const 16))
        (loop $ktail
          (if (i32.lt_u (local.get $p) (local.get $k))
            (then
              (if (i32.ge_u (local.get $p) (local.get $kv))
                (then (local.set $rest (i32.sub (local.get $k) (local.get $p)))))
              (local.set $a0 (call $load_bytes (i32.add (local.get $x0) (local.get $p)) (local.get $rest)))
              (local.set $a1 (call $load_bytes (i32.add (local.get $x1) (local.get $p)) (local.get $rest)))
              (local.set $b (call $load_bytes (i32.add (local.get $w0) (local.get $p)) (local.get $rest)))
              (local.set $c00 (i32x4.add (local.get $c00) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
              (local.set $c10 (i32x4.add (local.get $c10) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
              (local.set $b (call $load_bytes (i32.add (local.get $w1) (local.get $p)) (local.get $rest)))
              (local.set $c01 (i32x4.add (local.get $c01) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
              (local.set $c11 (i32x4.add (local.get $c11) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
              (local.set $b (call $load_bytes (i32.add (local.get $w2) (local.get $p)) (local.get $rest)))
              (local.set $c02 (i32x4.add (local.get $c02) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
              (local.set $c12 (i32x4.add (local.get $c12) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
              (local.set $b (call $load_bytes (i32.add (local.get $w3) (local.get $p)) (local.get $rest)))
              (local.set $c03 (i32x4.add (local.get $c03) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a0)) (local.get $ones))))
              (local.set $c13 (i32x4.add (local.get $c13) (i32x4.dot_i16x8_s (i16x8.dot_i8x16_i7x16_s (local.get $b) (local.get $a1)) (local.get $ones))))
              (local.set $p (i32.add (local.get $p) (i32.const 16)))
              (br $ktail))))
        ;; Epilogue: reduce, undo the zero point, scale, add bias; row i,
        ;; then row i+1 (clamped to m−1).
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $r (f32x4.add (f32x4.mul (f32x4.mul
                          (f32x4.convert_i32x4_s (i32x4.sub
                            (call $hsum4_i32 (local.get $c00) (local.get $c01) (local.get $c02) (local.get $c03))
                            (i32x4.mul (v128.load32_splat (i32.add (local.get $zx) (i32.shl (local.get $i) (i32.const 2)))) (local.get $wsv))))
                          (local.get $swv))
                        (v128.load32_splat (i32.add (local.get $sx) (i32.shl (local.get $i) (i32.const 2)))))
                      (local.get $bv)))
        (if (i32.eq (local.get $cnt) (i32.const 4))
          (then (v128.store align=4 (local.get $d) (local.get $r)))
          (else (call $store4s (local.get $d) (local.get $r) (local.get $cnt))))
        (local.set $i (call $min (i32.add (local.get $i) (i32.const 1)) (i32.sub (local.get $m) (i32.const 1))))
        (local.set $d (i32.add (i32.add (local.get $dst) (i32.mul (local.get $i) (local.get $ldd))) (i32.shl (local.get $j) (i32.const 2))))
        (local.set $r (f32x4.add (f32x4.mul (f32x4.mul
                          (f32x4.convert_i32x4_s (i32x4.sub
                            (call $hsum4_i32 (local.get $c10) (local.get $c11) (local.get $c12) (local.get $c13))
                            (i32x4.mul (v128.load32_splat (i32.add (local.get $zx) (i32.shl (local.get $i) (i32.const 2)))) (local.get $wsv))))
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
)
