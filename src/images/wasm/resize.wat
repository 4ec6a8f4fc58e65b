;; ML.RESIZE_IMAGE's bilinear kernel over 8-bit pixels (see ../resize.ts, which prepares
;; the sample positions and weights). The same float32 operations, in the same order, as
;; resizeBytes in resize.ts: WebAssembly's f32 arithmetic is IEEE single precision, so the
;; results are bit for bit those of TensorFlow's kernel. Four outputs per step (SIMD); the
;; table lookups stay scalar (WebAssembly has no gather).
;;
;; All arguments are byte addresses in this module's memory, except the counts.
;;   table   256 f32 at address 0: pixel value p -> p / 255
;;   xLeft, xRight   n i32 each: byte offset within a source row of each output value's
;;                   left and right neighbours (x * 3 + channel), n = output width * 3
;;   xLerp   n f32: horizontal weight of each output value
;;   yTop, yBottom   outH i32: byte offset of the upper and lower source rows
;;   yLerp   outH f32: vertical weight of each output row
;;   src     the source pixels (HWC, 3 channels); out: outH * n f32
(module
  (memory (export "memory") 1)
  ;; a + (b - a) * w, rounded to float32 at each step
  (func $lerp4 (param $a v128) (param $b v128) (param $w v128) (result v128)
    (f32x4.add (local.get $a) (f32x4.mul (f32x4.sub (local.get $b) (local.get $a)) (local.get $w))))
  (func $lerp (param $a f32) (param $b f32) (param $w f32) (result f32)
    (f32.add (local.get $a) (f32.mul (f32.sub (local.get $b) (local.get $a)) (local.get $w))))
  (func (export "resize")
    (param $xLeft i32) (param $xRight i32) (param $xLerp i32) (param $n i32)
    (param $yTop i32) (param $yBottom i32) (param $yLerp i32) (param $outH i32)
    (param $src i32) (param $out i32)
    (local $y i32) (local $i i32) (local $top i32) (local $bottom i32) (local $wy f32) (local $wy4 v128)
    (local $upper v128) (local $lower v128) (local $wx v128) (local $n4 i32) (local $u f32) (local $l f32)
    (local $atL i32) (local $atR i32) (local $L0 i32) (local $L1 i32) (local $L2 i32) (local $L3 i32) (local $R0 i32) (local $R1 i32) (local $R2 i32) (local $R3 i32)
    (local.set $n4 (i32.and (local.get $n) (i32.const -4)))
    (block $rowsDone
      (loop $rows
        (br_if $rowsDone (i32.ge_u (local.get $y) (local.get $outH)))
        (local.set $top (i32.add (local.get $src) (i32.load (i32.add (local.get $yTop) (i32.shl (local.get $y) (i32.const 2))))))
        (local.set $bottom (i32.add (local.get $src) (i32.load (i32.add (local.get $yBottom) (i32.shl (local.get $y) (i32.const 2))))))
        (local.set $wy (f32.load (i32.add (local.get $yLerp) (i32.shl (local.get $y) (i32.const 2)))))
        (local.set $wy4 (f32x4.splat (local.get $wy)))
        (local.set $i (i32.const 0))
        (block $quadsDone
          (loop $quads
            (br_if $quadsDone (i32.ge_u (local.get $i) (local.get $n4)))
            (local.set $atL (i32.add (local.get $xLeft) (i32.shl (local.get $i) (i32.const 2))))
            (local.set $atR (i32.add (local.get $xRight) (i32.shl (local.get $i) (i32.const 2))))
            (local.set $L0 (i32.load offset=0 (local.get $atL)))
            (local.set $L1 (i32.load offset=4 (local.get $atL)))
            (local.set $L2 (i32.load offset=8 (local.get $atL)))
            (local.set $L3 (i32.load offset=12 (local.get $atL)))
            (local.set $R0 (i32.load offset=0 (local.get $atR)))
            (local.set $R1 (i32.load offset=4 (local.get $atR)))
            (local.set $R2 (i32.load offset=8 (local.get $atR)))
            (local.set $R3 (i32.load offset=12 (local.get $atR)))
            (local.set $wx (v128.load (i32.add (local.get $xLerp) (i32.shl (local.get $i) (i32.const 2)))))
            (local.set $upper (call $lerp4 (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1 (f32x4.splat (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $L0))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $L1))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $L2))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $L3))) (i32.const 2)))) (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1 (f32x4.splat (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $R0))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $R1))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $R2))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (local.get $R3))) (i32.const 2)))) (local.get $wx)))
            (local.set $lower (call $lerp4 (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1 (f32x4.splat (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $L0))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $L1))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $L2))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $L3))) (i32.const 2)))) (f32x4.replace_lane 3 (f32x4.replace_lane 2 (f32x4.replace_lane 1 (f32x4.splat (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $R0))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $R1))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $R2))) (i32.const 2)))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (local.get $R3))) (i32.const 2)))) (local.get $wx)))
            (v128.store (local.get $out) (call $lerp4 (local.get $upper) (local.get $lower) (local.get $wy4)))
            (local.set $out (i32.add (local.get $out) (i32.const 16)))
            (local.set $i (i32.add (local.get $i) (i32.const 4)))
            (br $quads)))
        (block $tailDone
          (loop $tail
            (br_if $tailDone (i32.ge_u (local.get $i) (local.get $n)))
            (local.set $wx (f32x4.splat (f32.load (i32.add (local.get $xLerp) (i32.shl (local.get $i) (i32.const 2))))))
            (local.set $u (call $lerp (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (i32.load (i32.add (local.get $xLeft) (i32.shl (local.get $i) (i32.const 2)))))) (i32.const 2))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $top) (i32.load (i32.add (local.get $xRight) (i32.shl (local.get $i) (i32.const 2)))))) (i32.const 2))) (f32x4.extract_lane 0 (local.get $wx))))
            (local.set $l (call $lerp (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (i32.load (i32.add (local.get $xLeft) (i32.shl (local.get $i) (i32.const 2)))))) (i32.const 2))) (f32.load (i32.shl (i32.load8_u (i32.add (local.get $bottom) (i32.load (i32.add (local.get $xRight) (i32.shl (local.get $i) (i32.const 2)))))) (i32.const 2))) (f32x4.extract_lane 0 (local.get $wx))))
            (f32.store (local.get $out) (call $lerp (local.get $u) (local.get $l) (local.get $wy)))
            (local.set $out (i32.add (local.get $out) (i32.const 4)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $tail)))
        (local.set $y (i32.add (local.get $y) (i32.const 1)))
        (br $rows)))))
