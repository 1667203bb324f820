// rope.glsl - rotary position embedding with precise angles at any position.
//
// An fp32 product pos*freq loses ~2^-24 of its magnitude: at position 2^18 that is 1e-2 rad,
// and GPU sin/cos lose more on large arguments. The host precomputes, per pair i and in double,
// f = freq_i/(2 pi) and the fractional turns of 256*f and 65536*f; the angle in turns is then
// fract(a*F65536) + fract(b*F256) + c*f for pos = a*65536 + b*256 + c, with every product small.
// table.v[i] = (f, fract(256 f), fract(65536 f), 0).

float rope_turns(vec4 t, uint pos)
{
    float a = float(pos >> 16), b = float((pos >> 8) & 255u), c = float(pos & 255u);
    float turns = fract(a * t.z) + fract(b * t.y) + c * t.x;
    return turns - floor(turns + 0.5); // in [-0.5, 0.5)
}

// The rotated value of element e of a head vector, given the element and its pair partner.
// neox: pairs (i, i + rd/2); otherwise pairs (2i, 2i+1). Elements e >= rd are not rotated.
float rope_apply(V4Buf table, uint e, float x, float partner, uint pos, uint rd, uint neox)
{
    if (e >= rd)
        return x;
    uint half_rd = rd >> 1;
    uint i = neox != 0u ? (e % half_rd) : (e >> 1);
    bool first = neox != 0u ? (e < half_rd) : ((e & 1u) == 0u);
    float ang = 6.28318530717958647692 * rope_turns(table.v[i], pos);
    float cs = cos(ang), sn = sin(ang);
    return first ? x * cs - partner * sn : partner * sn + x * cs;
}

uint rope_partner(uint e, uint rd, uint neox)
{
    if (e >= rd)
        return e;
    uint half_rd = rd >> 1;
    if (neox != 0u)
        return e < half_rd ? e + half_rd : e - half_rd;
    return e ^ 1u;
}
