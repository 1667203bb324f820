/* bytes.h - little-endian fields and the FNV-1a word hash of esa-vk's files (persist.c, the
 * cache files; compression.c, the compression files). */
#ifndef ESA_BYTES_H
#define ESA_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* the files hold the device's and the host's bytes as they are: little-endian */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "esa-vk's file formats assume a little-endian host"
#endif

static inline void esa_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t esa_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void esa_put_u64(uint8_t *p, uint64_t v)
{
    esa_put_u32(p, (uint32_t)v);
    esa_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t esa_get_u64(const uint8_t *p)
{
    return (uint64_t)esa_get_u32(p) | (uint64_t)esa_get_u32(p + 4) << 32;
}

#define ESA_HASH_SEED 0xcbf29ce484222325ull

/* FNV-1a over little-endian 64-bit words; n is a multiple of 8. */
static inline uint64_t esa_hash_words(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i += 8)
        h = (h ^ esa_get_u64(p + i)) * 0x100000001b3ull;
    return h;
}

#endif
