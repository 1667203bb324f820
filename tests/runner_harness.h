/* runner_harness.h - shared by the esa_runner tests: checks that count failures, the loud skip,
 * and where the real model file is (model_path.h). */
#ifndef ESA_RUNNER_HARNESS_H
#define ESA_RUNNER_HARNESS_H

#include "expect.h"
#include "model_path.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKIP_CODE 77 /* CTest's SKIP_RETURN_CODE */


/* A call that must succeed; prints the runner's message when it does not. */
#define EXPECT_OK(call, errp)                                                                  \
    do {                                                                                       \
        esar_status s_ = (call);                                                               \
        EXPECT(s_ == ESAR_OK, "%s: %s: %s", #call, esar_status_string(s_), (errp)->msg);       \
    } while (0)

static inline int runner_finish(const char *name)
{
    return expect_finish(name);
}

#endif
