// The colorize page's own composition: the photo's lightness (GET /api/photos/{id}/lightness)
// plus the model's low-resolution ab (POST /api/ab) -> 8-bit sRGB pixels, the steps of
// tinct.Colorizer.render: ab scaled by the saturation, upsampled bilinearly (the taps of
// F.interpolate with align_corners=False), Lab -> sRGB as kornia.color.lab_to_rgb (D65),
// clipped, rounded. Saturation therefore costs no request. Also loadable by Node
// (module.exports) for tests and benchmarks/editor_speed.py.
"use strict";

const Lab = (() => {
  const L_SCALE = 655.35;  // tinct.serve.editor.L_SCALE: the lightness arrives as uint16 L x 655.35
  const M = [3.2404813432005266, -1.5371515162713185, -0.4985363261688878,
             -0.9692549499965682, 1.8759900014898907, 0.0415559265582928,
             0.0556466391351772, -0.2040413383665112, 1.0573110696453443];

  // Linear RGB -> 8-bit sRGB without a pow per pixel: the byte is k exactly when the linear
  // value lies in [T[k], T[k + 1]) (T inverts the sRGB curve at the rounding points
  // (k - 0.5) / 255); a coarse table gives the start, a step or two finds k.
  const T = new Float64Array(257);
  T[0] = -Infinity;
  T[256] = Infinity;
  for (let k = 1; k < 256; k++) {
    const s = (k - 0.5) / 255;
    T[k] = s <= 12.92 * 0.0031308 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  }
  const N = 4096;
  const START = new Uint8Array(N + 1);
  for (let i = 0, k = 0; i <= N; i++) {
    while (k < 255 && T[k + 1] <= i / N) k++;
    START[i] = k;
  }
  function toByte(x) {
    if (!(x > 0)) return 0;
    if (x >= 1) return 255;
    let k = START[(x * N) | 0];
    while (x >= T[k + 1]) k++;
    return k;
  }

  function taps(nOut, nIn) {  // tinct.colorizer._taps over the whole axis
    const i0 = new Int32Array(nOut), i1 = new Int32Array(nOut), t = new Float32Array(nOut);
    for (let o = 0; o < nOut; o++) {
      const src = Math.max(0, (o + 0.5) * (nIn / nOut) - 0.5);
      const lo = Math.min(Math.floor(src), nIn - 1);
      i0[o] = lo;
      i1[o] = Math.min(lo + 1, nIn - 1);
      t[o] = src - lo;
    }
    return { i0, i1, t };
  }

  // light: Uint16Array (W * H, L x L_SCALE); ab: Float32Array (2 * h * w: a then b) or null
  // (grey); out: Uint8ClampedArray (W * H * 4, RGBA). alpha: Uint8Array (W * H) or null.
  function compose(light, W, H, ab, w, h, saturation, out, alpha) {
    const s = saturation === undefined ? 1 : saturation;
    if (!ab) { ab = new Float32Array(2); w = 1; h = 1; }
    const ty = taps(H, h), tx = taps(W, w), plane = h * w;
    const rowA = new Float64Array(w), rowB = new Float64Array(w);
    const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = M, k = 1 / (L_SCALE * 116.0);
    for (let y = 0; y < H; y++) {
      const r0 = ty.i0[y] * w, r1 = ty.i1[y] * w, t = ty.t[y];
      for (let j = 0; j < w; j++) {
        rowA[j] = s * (ab[r0 + j] * (1 - t) + ab[r1 + j] * t) / 500.0;
        rowB[j] = s * (ab[plane + r0 + j] * (1 - t) + ab[plane + r1 + j] * t) / 200.0;
      }
      for (let x = 0, p = y * W; x < W; x++, p++) {
        const j0 = tx.i0[x], j1 = tx.i1[x], u = tx.t[x];
        const fy = light[p] * k + 16.0 / 116.0;
        const fx = rowA[j0] * (1 - u) + rowA[j1] * u + fy;
        let fz = fy - (rowB[j0] * (1 - u) + rowB[j1] * u);
        if (fz < 0) fz = 0;
        const X = (fx > 0.2068966 ? fx * fx * fx : (fx - 4.0 / 29.0) / 7.787) * 0.95047;
        const Y = fy > 0.2068966 ? fy * fy * fy : (fy - 4.0 / 29.0) / 7.787;
        const Z = (fz > 0.2068966 ? fz * fz * fz : (fz - 4.0 / 29.0) / 7.787) * 1.08883;
        const q = 4 * p;
        out[q] = toByte(m0 * X + m1 * Y + m2 * Z);
        out[q + 1] = toByte(m3 * X + m4 * Y + m5 * Z);
        out[q + 2] = toByte(m6 * X + m7 * Y + m8 * Z);
        out[q + 3] = alpha ? alpha[p] : 255;
      }
    }
    return out;
  }

  return { compose, toByte, L_SCALE };
})();

if (typeof module !== "undefined") module.exports = Lab;
