#version 450
// compress_reduce.comp - after a compress.comp split over its columns (few tokens: too few
// workgroups otherwise to read the matrix in parallel): one invocation per token and four
// output rows adds the splits' partial sums in split order (deterministic) and stores them.
#include "compress.glsl"

layout(local_size_x_id = 0) in;

void main()
{
    uint rs = row_stride(), quads = rs / 4u, i = gl_GlobalInvocationID.x;
    if (i >= pc.n * quads)
        return;
    uint t = i / quads, q = i % quads;
    uint splits = (pc.cols + pc.split_cols - 1u) / pc.split_cols;
    vec4 acc = vec4(0.0);
    for (uint z = 0u; z < splits; z++)
        acc += pc.part.v[(z * pc.n + t) * quads + q];
    store_rows(t, 4u * q, acc);
}
