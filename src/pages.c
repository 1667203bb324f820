/* pages.c - the K/V cache in fixed-size pages (ESA-SPEC section 8), so that a context whose
 * K/V exceed the device's memory runs with most of them in host memory.
 *
 * A page holds K then V of page_tokens consecutive tokens of one layer. Pages come from two
 * pools: the device pool, allocated whole at create up to the caller's budget, and the host
 * pool, grown slab by slab as the context grows (up to the host budget, or until the system
 * says no). Each layer has a page table on the device, one 64-bit address a page, through
 * which every shader that touches K/V finds a token: nothing in a shader depends on where a
 * page lives.
 *
 * Placement, before each step of a layer: the pages of its initial tokens and of its local and
 * current tokens must be on the device. A page that needs a device page while the pool is
 * empty takes one from a middle page (this layer's first, then another layer's, never one
 * that another layer's next step needs on the device), whose contents are copied to a host
 * page; a needed page that is in host memory (after a truncate, or a load) is copied back.
 * The copies and the table updates are recorded into the step's command buffer, so engines
 * that record several steps before submitting see them in order. Host pages are reserved
 * before anything is recorded: running out of host memory fails the step cleanly. */
#include "internal.h"

#include <string.h>

#define SLAB_BYTES (64ull << 20) /* pages a slab: about this many bytes */

static VkDeviceAddress page_address(const esa_cache *c, uint32_t h)
{
    const esa_pool *p = &c->pool[(h & ESA_PAGE_HOST) != 0];
    uint32_t id = h & ~ESA_PAGE_HOST;
    return p->slabs[id / p->pages_per_slab].address + (VkDeviceAddress)(id % p->pages_per_slab) * c->page_bytes;
}

static const esa_buffer *page_buffer(const esa_cache *c, uint32_t h, VkDeviceSize *off)
{
    const esa_pool *p = &c->pool[(h & ESA_PAGE_HOST) != 0];
    uint32_t id = h & ~ESA_PAGE_HOST;
    *off = (VkDeviceSize)(id % p->pages_per_slab) * c->page_bytes;
    return &p->slabs[id / p->pages_per_slab];
}

/* *arr (used elements of size elem) moved into a zeroed array of cap; 0 when out of memory. */
static int resize(esa_context *ctx, void **arr, size_t used, size_t cap, size_t elem)
{
    void *a = esa_calloc(ctx, cap, elem);
    if (!a)
        return 0;
    if (used)
        memcpy(a, *arr, used * elem);
    esa_free(ctx, *arr);
    *arr = a;
    return 1;
}

/* One more slab (pages up to the pool's limit). */
static esa_status pool_grow(esa_cache *c, esa_pool *p)
{
    esa_context *ctx = c->ctx;
    uint64_t n = p->limit - p->total;
    if (n > p->pages_per_slab)
        n = p->pages_per_slab;
    if (n == 0)
        return esa_fail(ctx, p->kind == ESA_MEM_HOST ? ESA_ERROR_OUT_OF_HOST_MEMORY : ESA_ERROR_OUT_OF_DEVICE_MEMORY,
                        "the %s budget for K/V pages (%llu pages of %llu bytes) is used up",
                        p->kind == ESA_MEM_HOST ? "host" : "device", (unsigned long long)p->limit,
                        (unsigned long long)c->page_bytes);
    if (p->n_slabs == p->cap_slabs) {
        uint32_t cap = p->cap_slabs ? 2 * p->cap_slabs : 16;
        if (!resize(ctx, (void **)&p->slabs, p->n_slabs, cap, sizeof *p->slabs))
            return ESA_ERROR_OUT_OF_HOST_MEMORY;
        p->cap_slabs = cap;
    }
    /* room for every page the pool will hold: a truncate or clear gives them all back, also
     * those that were in use when this slab came (sized by the free ones, it overflowed) */
    if (p->total + n > p->cap_free) {
        uint64_t cap = p->total + n;
        if (!resize(ctx, (void **)&p->free_ids, p->n_free, (size_t)cap, sizeof *p->free_ids))
            return ESA_ERROR_OUT_OF_HOST_MEMORY;
        p->cap_free = (uint32_t)cap;
    }
    esa_buffer *b = &p->slabs[p->n_slabs];
    esa_status s = esa_buffer_create(ctx, n * c->page_bytes, p->kind, b);
    if (s != ESA_SUCCESS) {
        if (p->kind == ESA_MEM_HOST && s != ESA_ERROR_LIMIT) /* the host's memory, whatever Vulkan said */
            return esa_fail(ctx, ESA_ERROR_OUT_OF_HOST_MEMORY,
                            "no host memory for %llu more K/V pages (%llu held): %s", (unsigned long long)n,
                            (unsigned long long)p->total, ctx->last_error);
        return s;
    }
    /* ids of this slab, pushed so the lowest is taken first */
    uint32_t first = p->n_slabs * p->pages_per_slab;
    for (uint64_t i = n; i-- > 0;)
        p->free_ids[p->n_free++] = first + (uint32_t)i;
    p->n_slabs++;
    p->total += n;
    return ESA_SUCCESS;
}

static esa_status pool_reserve(esa_cache *c, esa_pool *p, uint64_t n)
{
    while (p->n_free < n) {
        esa_status s = pool_grow(c, p);
        if (s != ESA_SUCCESS)
            return s;
    }
    return ESA_SUCCESS;
}

static uint32_t pool_take(esa_pool *p)
{
    return p->free_ids[--p->n_free] | (p->kind == ESA_MEM_HOST ? ESA_PAGE_HOST : 0u);
}

static void pool_give(esa_pool *p, uint32_t h)
{
    p->free_ids[p->n_free++] = h & ~ESA_PAGE_HOST;
}

/* Pages of a layer that its step of n tokens at P needs on the device: [0, i_end) and
 * [l_lo, l_end), the tokens of I and of L and C (the split of esa_record_chunk). */
typedef struct needed {
    uint32_t i_end, l_lo, l_end;
} needed;

static needed needed_pages(const esa_cache *c, uint32_t P, uint32_t n)
{
    const esa_cache_desc *d = &c->d;
    uint32_t nI = esa_min_u32(d->n_initial, P);
    uint32_t nL = esa_min_u32(d->n_local, P - nI);
    uint32_t pt = c->page_tokens;
    needed r = {esa_div_up(nI, pt), (P - nL) / pt, esa_div_up(P + n, pt)};
    if (r.l_lo >= r.l_end) /* n = 0 and nothing local: no page */
        r.l_lo = r.l_end;
    return r;
}

static int is_needed(const needed *r, uint32_t p)
{
    return p < r->i_end || (p >= r->l_lo && p < r->l_end);
}

esa_status esa_pages_create(esa_cache *c)
{
    esa_context *ctx = c->ctx;
    const esa_cache_desc *d = &c->d;
    uint32_t gd = d->n_kv_heads * d->head_dim;
    uint32_t pt = d->page_tokens;
    if (pt == 0) {
        pt = 256;
        while (pt > 16 && pt / 2 >= d->max_tokens)
            pt /= 2;
    }
    if (pt < 16 || pt > 65536 || (pt & (pt - 1)))
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "page_tokens must be a power of two in 16..65536 (got %u)", pt);
    c->page_tokens = pt;
    c->d.page_tokens = pt; /* esa_cache_get_desc reports the resolved values */
    c->page_shift = 0;
    while ((1u << c->page_shift) < pt)
        c->page_shift++;
    c->page_bytes = (uint64_t)pt * gd * 2 * 2;
    c->max_pages = esa_div_up(d->max_tokens, pt);
    uint64_t all = (uint64_t)c->max_pages * d->n_layers;
    uint64_t dev = all;
    if (d->kv_device_budget) {
        uint64_t per_layer = esa_div_up(d->n_initial, pt) + esa_div_up(d->n_local + d->chunk, pt) + 1u;
        uint64_t need = per_layer * d->n_layers;
        if (need > all)
            need = all;
        dev = d->kv_device_budget / c->page_bytes;
        if (dev < need)
            return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT,
                            "kv_device_budget %llu bytes holds %llu pages of %llu bytes; the initial, local and "
                            "current tokens of %u layers need %llu pages (%llu bytes)",
                            (unsigned long long)d->kv_device_budget, (unsigned long long)dev,
                            (unsigned long long)c->page_bytes, d->n_layers, (unsigned long long)need,
                            (unsigned long long)(need * c->page_bytes));
        if (dev > all)
            dev = all;
    }
    /* the shaders add byte offsets within a page, and within the gathered rows, in 32 bits */
    if (c->page_bytes / 2 > UINT32_MAX)
        return esa_fail(ctx, ESA_ERROR_LIMIT, "page_tokens %u: a page's K of %llu bytes exceeds 4 GiB", pt,
                        (unsigned long long)(c->page_bytes / 2));
    uint64_t max_alloc = ctx->info.max_memory_allocation_size;
    if (c->page_bytes > max_alloc)
        return esa_fail(ctx, ESA_ERROR_LIMIT, "a page of %llu bytes exceeds maxMemoryAllocationSize (%llu)",
                        (unsigned long long)c->page_bytes, (unsigned long long)max_alloc);
    uint64_t slab = SLAB_BYTES < max_alloc ? SLAB_BYTES : max_alloc;
    uint64_t pps = slab / c->page_bytes ? slab / c->page_bytes : 1;
    for (int i = 0; i < 2; i++) {
        c->pool[i] = (esa_pool){.pages_per_slab = (uint32_t)pps, .kind = i ? ESA_MEM_HOST : ESA_MEM_DEVICE};
    }
    c->pool[0].limit = dev;
    c->pool[1].limit = dev == all ? 0 : d->kv_host_budget ? d->kv_host_budget / c->page_bytes : all;
    if (c->pool[1].limit > all)
        c->pool[1].limit = all;
    c->kv_read = d->kv_read ? d->kv_read : esa_kv_read_for(ctx);
    c->d.kv_read = c->kv_read;
    for (uint32_t l = 0; l < d->n_layers; l++) {
        esa_layer *L = &c->layers[l];
        L->page = esa_malloc(ctx, c->max_pages * sizeof *L->page);
        L->addr = esa_calloc(ctx, c->max_pages, sizeof *L->addr);
        if (!L->page || !L->addr)
            return ESA_ERROR_OUT_OF_HOST_MEMORY;
        for (uint32_t p = 0; p < c->max_pages; p++)
            L->page[p] = ESA_PAGE_NONE;
        esa_status s = esa_buffer_create(ctx, (VkDeviceSize)c->max_pages * 8, ESA_MEM_DEVICE, &L->table);
        if (s != ESA_SUCCESS)
            return s;
    }
    /* the device pool is held whole from the start: a budget is a reservation */
    esa_status s = pool_reserve(c, &c->pool[0], dev);
    if (s == ESA_SUCCESS && c->pool[1].limit && c->kv_read == ESA_KV_READ_COPY) {
        uint64_t bytes = (uint64_t)d->top_k * gd * 2 * 2; /* gather.comp's offsets are 32-bit */
        if (bytes > UINT32_MAX)
            return esa_fail(ctx, ESA_ERROR_LIMIT, "top_k %u: the K and V of the selected tokens (%llu bytes) "
                            "exceed 4 GiB; use ESA_KV_READ_DIRECT", d->top_k, (unsigned long long)bytes);
        s = esa_buffer_create(ctx, bytes, ESA_MEM_DEVICE, &c->gather);
    }
    return s;
}

void esa_pages_destroy(esa_cache *c)
{
    esa_context *ctx = c->ctx;
    if (c->layers)
        for (uint32_t l = 0; l < c->d.n_layers; l++) {
            esa_layer *L = &c->layers[l];
            esa_buffer_destroy(ctx, &L->table);
            esa_free(ctx, L->page);
            esa_free(ctx, L->addr);
            L->page = NULL;
            L->addr = NULL;
        }
    for (int i = 0; i < 2; i++) {
        esa_pool *p = &c->pool[i];
        for (uint32_t j = 0; j < p->n_slabs; j++)
            esa_buffer_destroy(ctx, &p->slabs[j]);
        esa_free(ctx, p->slabs);
        esa_free(ctx, p->free_ids);
        *p = (esa_pool){0};
    }
    esa_buffer_destroy(ctx, &c->gather);
}

/* A device page that no layer's next step needs: this layer's middle first, then the others'
 * (their next step assumed a whole chunk). Returns 0 when there is none. */
static int find_victim(const esa_cache *c, uint32_t layer, const needed *mine, uint32_t *vl, uint32_t *vp)
{
    for (uint32_t i = 0; i < c->d.n_layers; i++) {
        uint32_t l = (layer + i) % c->d.n_layers;
        const esa_layer *L = &c->layers[l];
        needed r = l == layer ? *mine : needed_pages(c, L->len, c->d.chunk);
        for (uint32_t p = 0; p < L->n_pages; p++)
            if (L->page[p] != ESA_PAGE_NONE && !(L->page[p] & ESA_PAGE_HOST) && !is_needed(&r, p)) {
                *vl = l;
                *vp = p;
                return 1;
            }
    }
    return 0;
}

static void set_page(esa_cache *c, uint32_t l, uint32_t p, uint32_t h, uint32_t *lo, uint32_t *hi)
{
    esa_layer *L = &c->layers[l];
    if (L->page[p] != ESA_PAGE_NONE && (L->page[p] & ESA_PAGE_HOST))
        L->host_pages--;
    if (h & ESA_PAGE_HOST)
        L->host_pages++;
    L->page[p] = h;
    L->addr[p] = page_address(c, h);
    if (p < lo[l])
        lo[l] = p;
    if (p + 1 > hi[l])
        hi[l] = p + 1;
}

static void copy_page(esa_cache *c, VkCommandBuffer cb, uint32_t from, uint32_t to)
{
    VkDeviceSize so, dof;
    const esa_buffer *sb = page_buffer(c, from, &so), *db = page_buffer(c, to, &dof);
    VkBufferCopy region = {.srcOffset = so, .dstOffset = dof, .size = c->page_bytes};
    c->ctx->vk.vkCmdCopyBuffer(cb, sb->buffer, db->buffer, 1, &region);
}

/* Bring layer's needed page p back from host memory into a free device page. */
static void bring_back(esa_cache *c, VkCommandBuffer cb, uint32_t layer, uint32_t p, uint32_t *lo, uint32_t *hi)
{
    uint32_t h = c->layers[layer].page[p], d = pool_take(&c->pool[0]);
    copy_page(c, cb, h, d);
    set_page(c, layer, p, d, lo, hi);
    pool_give(&c->pool[1], h); /* reused only after a barrier that ends this copy */
}

esa_status esa_pages_place(esa_cache *c, VkCommandBuffer cb, uint32_t layer, uint32_t P, uint32_t n)
{
    esa_context *ctx = c->ctx;
    esa_layer *L = &c->layers[layer];
    esa_pool *dev = &c->pool[0], *host = &c->pool[1];
    needed r = needed_pages(c, P, n);
    uint32_t end = esa_div_up(P + n, c->page_tokens);
    /* phase 1, nothing changed yet: what is missing, and whether host memory suffices */
    uint64_t back = 0, fresh = 0, extra = 0; /* needed pages in host memory, needed new, other new */
    for (uint32_t p = 0; p < end; p++) {
        uint32_t h = L->page[p];
        if (is_needed(&r, p)) {
            back += h != ESA_PAGE_NONE && (h & ESA_PAGE_HOST);
            fresh += h == ESA_PAGE_NONE;
        } else {
            extra += h == ESA_PAGE_NONE;
        }
    }
    if (back + fresh + extra == 0)
        return ESA_SUCCESS;
    /* The order (phase 2): round 1 brings pages back into free device pages, which frees
     * their host pages; the evictions then move other middle pages to host memory; round 2
     * brings the rest back and places the new pages. So the evictions may use the host pages
     * of round 1, and the other new pages those of round 2. */
    uint64_t dev_free = dev->n_free; /* the device pool is allocated whole at create */
    uint64_t back1 = back < dev_free ? back : dev_free;
    uint64_t evict = back + fresh > dev_free ? back + fresh - dev_free : 0;
    uint64_t left = dev_free > back + fresh ? dev_free - back - fresh : 0;
    uint64_t extra_host = extra > left ? extra - left : 0;
    uint64_t need = evict > back1 ? evict - back1 : 0;
    if (evict + extra_host > back && evict + extra_host - back > need)
        need = evict + extra_host - back;
    esa_status s = pool_reserve(c, host, need);
    if (s != ESA_SUCCESS)
        return esa_fail(ctx, s, "layer %u at %u tokens: %s", layer, P + n, ctx->last_error);
    if (evict) { /* there is always a victim when the budget holds the minimum (esa_pages_create) */
        uint64_t found = 0;
        for (uint32_t i = 0; i < c->d.n_layers && found < evict; i++) {
            const esa_layer *M = &c->layers[i];
            needed rm = i == layer ? r : needed_pages(c, M->len, c->d.chunk);
            for (uint32_t p = 0; p < M->n_pages && found < evict; p++)
                found += M->page[p] != ESA_PAGE_NONE && !(M->page[p] & ESA_PAGE_HOST) && !is_needed(&rm, p);
        }
        if (found < evict)
            return esa_fail(ctx, ESA_ERROR_OUT_OF_DEVICE_MEMORY,
                            "layer %u: no device page can be given up for its local tokens", layer);
    }
    /* phase 2; lo/hi: the range of each layer's page table to rewrite */
    uint32_t nl = c->d.n_layers;
    uint32_t lo_stack[64], hi_stack[64];
    uint32_t *lo = nl <= 64 ? lo_stack : esa_malloc(ctx, 2 * (size_t)nl * sizeof *lo);
    if (!lo)
        return ESA_ERROR_OUT_OF_HOST_MEMORY;
    uint32_t *hi = nl <= 64 ? hi_stack : lo + nl;
    for (uint32_t l = 0; l < nl; l++) {
        lo[l] = UINT32_MAX;
        hi[l] = 0;
    }
    esa_cmd_barrier(ctx, cb); /* after earlier steps' reads and writes of these pages */
    uint64_t moved = 0;
    for (uint32_t p = 0; p < end && moved < back1; p++)
        if (is_needed(&r, p) && L->page[p] != ESA_PAGE_NONE && (L->page[p] & ESA_PAGE_HOST)) {
            bring_back(c, cb, layer, p, lo, hi);
            moved++;
        }
    if (back1 && evict)
        esa_cmd_barrier(ctx, cb); /* the host pages just read may now be written */
    for (uint64_t e = 0; e < evict; e++) {
        uint32_t vl = 0, vp = 0;
        find_victim(c, layer, &r, &vl, &vp);
        uint32_t d = c->layers[vl].page[vp], h = pool_take(host);
        copy_page(c, cb, d, h);
        set_page(c, vl, vp, h, lo, hi);
        pool_give(dev, d); /* taken back below, after the barrier that ends its copy */
    }
    if (evict)
        esa_cmd_barrier(ctx, cb);
    uint64_t spare = left; /* device pages the new pages outside I, L and C may take */
    for (uint32_t p = 0; p < end; p++) {
        uint32_t h = L->page[p];
        if (is_needed(&r, p) && h != ESA_PAGE_NONE && (h & ESA_PAGE_HOST)) {
            bring_back(c, cb, layer, p, lo, hi);
        } else if (is_needed(&r, p) && h == ESA_PAGE_NONE) {
            set_page(c, layer, p, pool_take(dev), lo, hi);
        } else if (h == ESA_PAGE_NONE) {
            /* no contents yet: a host page freed by a copy above is written only after the
             * barrier at the end */
            set_page(c, layer, p, spare ? pool_take(dev) : pool_take(host), lo, hi);
            spare -= spare != 0;
        }
    }
    if (end > L->n_pages)
        L->n_pages = end;
    for (uint32_t l = 0; l < nl; l++)
        if (hi[l] > lo[l]) /* vkCmdUpdateBuffer: at most 65536 bytes a call */
            for (uint32_t p = lo[l]; p < hi[l]; p += 8192) {
                uint32_t m = esa_min_u32(8192u, hi[l] - p);
                ctx->vk.vkCmdUpdateBuffer(cb, c->layers[l].table.buffer, (VkDeviceSize)p * 8, (VkDeviceSize)m * 8,
                                          &c->layers[l].addr[p]);
            }
    esa_cmd_barrier(ctx, cb);
    if (lo != lo_stack)
        esa_free(ctx, lo);
    return ESA_SUCCESS;
}

esa_status esa_cache_reserve(esa_cache *c, uint32_t n)
{
    if (!c)
        return ESA_ERROR_INVALID_ARGUMENT;
    esa_context *ctx = c->ctx;
    if (n == 0 || n > c->d.chunk)
        return esa_fail(ctx, ESA_ERROR_INVALID_ARGUMENT, "n must be 1..chunk (%u), got %u", c->d.chunk, n);
    /* the device pages every layer's step asks for (bring-backs, new pages) beyond the free
     * ones become evictions or host pages, one host page each: an upper bound, since
     * bring-backs also free host pages */
    uint64_t demand = 0, extra = 0;
    for (uint32_t l = 0; l < c->d.n_layers; l++) {
        const esa_layer *L = &c->layers[l];
        if ((uint64_t)L->len + n > c->d.max_tokens)
            return esa_fail(ctx, ESA_ERROR_CAPACITY, "layer %u holds %u tokens; %u more exceed max_tokens %u", l,
                            L->len, n, c->d.max_tokens);
        needed r = needed_pages(c, L->len, n);
        for (uint32_t p = 0; p < r.l_end; p++) {
            uint32_t h = p < L->n_pages ? L->page[p] : ESA_PAGE_NONE;
            if (is_needed(&r, p))
                demand += h == ESA_PAGE_NONE || (h & ESA_PAGE_HOST);
            else
                extra += h == ESA_PAGE_NONE;
        }
    }
    uint64_t dev_free = c->pool[0].n_free;
    uint64_t host = demand + extra > dev_free ? demand + extra - dev_free : 0;
    esa_status s = pool_reserve(c, &c->pool[1], host);
    if (s != ESA_SUCCESS)
        return esa_fail(ctx, s, "a step of %u tokens in every layer: %s", n, ctx->last_error);
    return ESA_SUCCESS;
}

esa_status esa_pages_check_fit(esa_cache *c, const uint32_t *lens)
{
    uint64_t need = 0, room = c->pool[0].limit + c->pool[1].limit;
    for (uint32_t l = 0; l < c->d.n_layers; l++)
        need += esa_div_up(lens[l], c->page_tokens);
    if (need <= room)
        return ESA_SUCCESS;
    return esa_fail(c->ctx, ESA_ERROR_OUT_OF_HOST_MEMORY,
                    "%llu K/V pages are needed; the device and host budgets hold %llu and %llu pages of %llu bytes",
                    (unsigned long long)need, (unsigned long long)c->pool[0].limit,
                    (unsigned long long)c->pool[1].limit, (unsigned long long)c->page_bytes);
}

void esa_pages_release(esa_cache *c, uint32_t layer, uint32_t len)
{
    esa_layer *L = &c->layers[layer];
    uint32_t keep = esa_div_up(len, c->page_tokens);
    for (uint32_t p = keep; p < L->n_pages; p++) {
        uint32_t h = L->page[p];
        if (h == ESA_PAGE_NONE)
            continue;
        if (h & ESA_PAGE_HOST)
            L->host_pages--;
        pool_give(&c->pool[(h & ESA_PAGE_HOST) != 0], h);
        L->page[p] = ESA_PAGE_NONE;
    }
    if (L->n_pages > keep)
        L->n_pages = keep;
}

void esa_pages_record_copy(esa_cache *c, VkCommandBuffer cb, uint32_t layer, int which, uint64_t off,
                           const esa_buffer *buf, VkDeviceSize buf_off, uint64_t n, int to_pages)
{
    const esa_layer *L = &c->layers[layer];
    uint64_t half = c->page_bytes / 2; /* the K (or V) bytes of a page */
    while (n) {
        uint32_t p = (uint32_t)(off / half);
        uint64_t in = off % half, m = half - in < n ? half - in : n;
        VkDeviceSize po;
        const esa_buffer *pb = page_buffer(c, L->page[p], &po);
        po += (which ? half : 0) + in;
        VkBufferCopy region = {.srcOffset = to_pages ? buf_off : po, .dstOffset = to_pages ? po : buf_off, .size = m};
        c->ctx->vk.vkCmdCopyBuffer(cb, to_pages ? buf->buffer : pb->buffer, to_pages ? pb->buffer : buf->buffer, 1,
                                   &region);
        off += m;
        buf_off += m;
        n -= m;
    }
}

esa_status esa_pages_copy_wait(esa_cache *c, uint32_t layer, int which, uint64_t off,
                               const esa_buffer *buf, VkDeviceSize buf_off, uint64_t n, int to_pages)
{
    VkCommandBuffer cb;
    esa_status s = esa_begin(c->ctx, &cb);
    if (s != ESA_SUCCESS)
        return s;
    esa_cmd_barrier(c->ctx, cb);
    esa_pages_record_copy(c, cb, layer, which, off, buf, buf_off, n, to_pages);
    esa_cmd_barrier(c->ctx, cb);
    return esa_submit_wait(c->ctx);
}

esa_status esa_cache_memory_usage(const esa_cache *c, esa_cache_memory *u)
{
    if (!c || !u)
        return ESA_ERROR_INVALID_ARGUMENT;
    memset(u, 0, sizeof *u);
    for (int i = 0; i < 2; i++) {
        const esa_pool *p = &c->pool[i];
        uint64_t held = 0;
        for (uint32_t j = 0; j < p->n_slabs; j++)
            held += p->slabs[j].alloc_size;
        if (i == 0)
            u->device_bytes = c->fixed_bytes + held;
        else
            u->host_bytes = held;
    }
    for (uint32_t l = 0; l < c->d.n_layers; l++) {
        const esa_layer *L = &c->layers[l];
        uint32_t used = 0;
        for (uint32_t p = 0; p < L->n_pages; p++)
            used += L->page[p] != ESA_PAGE_NONE;
        u->host_pages += L->host_pages;
        u->device_pages += used - L->host_pages;
    }
    u->page_bytes = c->page_bytes;
    u->page_tokens = c->page_tokens;
    u->kv_read = c->kv_read;
    return ESA_SUCCESS;
}
