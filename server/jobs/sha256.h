/*
 * sha256.h: SHA-256 (FIPS 180-4), for hashing bearer tokens before they are
 * stored or looked up. Small and dependency-free: the daemon links no TLS
 * library, and a token hash is all it needs.
 */
#ifndef QN_SHA256_H
#define QN_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32 /* bytes of a digest */

/* The digest of data[len] into out[SHA256_LEN]. */
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

/* The digest of data[len] as 64 lower-case hex digits and a NUL into hex[65]. */
void sha256_hex(const void *data, size_t len, char hex[2 * SHA256_LEN + 1]);

/* Bytes b[n] as 2n lower-case hex digits and a NUL into hex[2n + 1]. */
void sha256_hex_encode(const uint8_t *b, size_t n, char *hex);

#endif
