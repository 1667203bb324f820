// rope.glsl - rotary position embedding (RoPE) at any position, without trigonometry.
//
// An fp32 product pos*freq loses ~2^-24 of its magnitude (1e-2 rad at position 2^18), and GPU
// sin/cos lose more on large arguments. The host tabulates in double, for every rotary pair i,
// the rotation (cos, sin) of j * 256^l positions, j < 256, l = 0, 1, 2: a position below 2^24
// is three base-256 digits, its rotation the product of three table entries (two complex
// multiplications, error a few fp32 ulps whatever the position).
//
// table.v[(l * 256 + j) * half_rd + i] = (cos, sin) of j * 256^l positions for pair i; half_rd
// = rotated dims / 2, a multiple of 4, so the 4 pairs of a block of 8 dims are two vec4.

vec2 cmul(vec2 a, vec2 b) { return vec2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x); }

// The rotations of pairs i0..i0+3 (i0 % 4 == 0) at position pos (< 2^24).
void rope_cs4(V4Buf table, uint half_rd, uint i0, uint pos, out vec2 cs[4])
{
    uint e0 = ((pos & 255u) * half_rd + i0) / 2u;
    uint e1 = ((256u + ((pos >> 8) & 255u)) * half_rd + i0) / 2u;
    uint e2 = ((512u + (pos >> 16)) * half_rd + i0) / 2u;
    vec4 a0 = table.v[e0], a1 = table.v[e0 + 1u];
    vec4 b0 = table.v[e1], b1 = table.v[e1 + 1u];
    vec4 c0 = table.v[e2], c1 = table.v[e2 + 1u];
    cs[0] = cmul(cmul(a0.xy, b0.xy), c0.xy);
    cs[1] = cmul(cmul(a0.zw, b0.zw), c0.zw);
    cs[2] = cmul(cmul(a1.xy, b1.xy), c1.xy);
    cs[3] = cmul(cmul(a1.zw, b1.zw), c1.zw);
}

// The rotation of one pair i at position pos (< 2^24).
vec2 rope_cs1(V2Buf table, uint half_rd, uint i, uint pos)
{
    vec2 a = table.v[(pos & 255u) * half_rd + i];
    vec2 b = table.v[(256u + ((pos >> 8) & 255u)) * half_rd + i];
    vec2 c = table.v[(512u + (pos >> 16)) * half_rd + i];
    return cmul(cmul(a, b), c);
}
