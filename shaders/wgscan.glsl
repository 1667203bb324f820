// wgscan.glsl - workgroup prefix sums and "where does the running count reach t", in shared
// memory only: correct for any subgroup size and any mapping of invocations to subgroups.
// Include after the layout(local_size_x = ...) declaration. Every function holds barriers:
// call them from uniform control flow only.

const uint SCAN_WG = gl_WorkGroupSize.x;
const uint SCAN_RUN = 16u; // serial run of the first level; SCAN_WG must be a multiple of it

shared uint s_scan[SCAN_WG];
shared uint s_scan_part[SCAN_WG / SCAN_RUN];
shared uint s_cross_at, s_cross_before;

// Sum of v over the invocations with a lower gl_LocalInvocationIndex.
uint wg_exclusive_add(uint v)
{
    uint lid = gl_LocalInvocationIndex;
    s_scan[lid] = v;
    barrier();
    if (lid < SCAN_WG / SCAN_RUN) {
        uint run = 0u;
        for (uint i = 0u; i < SCAN_RUN; i++) {
            uint t = s_scan[lid * SCAN_RUN + i];
            s_scan[lid * SCAN_RUN + i] = run;
            run += t;
        }
        s_scan_part[lid] = run;
    }
    barrier();
    if (lid == 0u) {
        uint run = 0u;
        for (uint i = 0u; i < SCAN_WG / SCAN_RUN; i++) {
            uint t = s_scan_part[i];
            s_scan_part[i] = run;
            run += t;
        }
    }
    barrier();
    uint r = s_scan[lid] + s_scan_part[lid / SCAN_RUN];
    barrier(); // s_scan may be reused at once
    return r;
}

#ifdef SCAN_COUNTS
shared uint s_cnt[SCAN_COUNTS];

// Visits s_cnt[base .. base + n) upwards, or downwards when desc, and finds the item at which
// the running count reaches target (1 <= target <= the total): s_cross_at is its index (from
// base), s_cross_before the count visited before it. Each invocation sums a run of
// consecutive items, a prefix sum orders the runs, and the one run that reaches target walks
// its items. Starts with a barrier, so the results of the previous call may be read up to it.
void wg_crossing(uint base, uint n, bool desc, uint target)
{
    barrier();
    uint lid = gl_LocalInvocationIndex;
    uint per = (n + SCAN_WG - 1u) / SCAN_WG;
    uint lo = min(lid * per, n), hi = min(lo + per, n);
    uint sum = 0u;
    for (uint p = lo; p < hi; p++)
        sum += s_cnt[base + (desc ? n - 1u - p : p)];
    if (lid == 0u) { // defined results even if the caller broke the contract
        s_cross_at = desc ? 0u : n - 1u;
        s_cross_before = 0u;
    }
    uint before = wg_exclusive_add(sum);
    if (before < target && target <= before + sum) {
        uint run = before;
        for (uint p = lo; p < hi; p++) {
            uint i = desc ? n - 1u - p : p;
            uint c = s_cnt[base + i];
            if (run + c >= target) {
                s_cross_at = i;
                s_cross_before = run;
                break;
            }
            run += c;
        }
    }
    barrier();
}
#endif
