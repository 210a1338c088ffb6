/*
 * tap.h
 *		A few macros that make a C program speak TAP, for the unit tests of
 *		the pure layer (run by prove; see test/unit/Makefile rules in the
 *		top-level Makefile).
 */
#ifndef DG_TAP_H
#define DG_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int	tap_count = 0;
static int	tap_failed = 0;

#define ok(cond, ...) \
	do { \
		int tap_ok_ = (cond) ? 1 : 0; \
		tap_count++; \
		if (!tap_ok_) tap_failed++; \
		printf("%s %d - ", tap_ok_ ? "ok" : "not ok", tap_count); \
		printf(__VA_ARGS__); \
		printf("\n"); \
		if (!tap_ok_) printf("#   failed at %s line %d\n", __FILE__, __LINE__); \
	} while (0)

#define is_str(got, want, ...) \
	do { \
		const char *tap_g_ = (got), *tap_w_ = (want); \
		int tap_same_ = (tap_g_ && tap_w_) ? strcmp(tap_g_, tap_w_) == 0 : tap_g_ == tap_w_; \
		ok(tap_same_, __VA_ARGS__); \
		if (!tap_same_) printf("#          got: %s\n#     expected: %s\n", \
							   tap_g_ ? tap_g_ : "(null)", tap_w_ ? tap_w_ : "(null)"); \
	} while (0)

#define is_int(got, want, ...) \
	do { \
		long long tap_g_ = (long long) (got), tap_w_ = (long long) (want); \
		ok(tap_g_ == tap_w_, __VA_ARGS__); \
		if (tap_g_ != tap_w_) printf("#          got: %lld\n#     expected: %lld\n", tap_g_, tap_w_); \
	} while (0)

#define diag(...) do { printf("# "); printf(__VA_ARGS__); printf("\n"); } while (0)

static inline int
done_testing(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
