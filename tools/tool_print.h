/* tool_print.h - the tools print the markdown table they wrote (results.md, recall.md, ...)
 * on stdout too, so a run shows its result without opening the file. */
#ifndef ESA_TOOL_PRINT_H
#define ESA_TOOL_PRINT_H

#include <stdio.h>

/* dir/name to stdout; nothing when it cannot be read (the writer has said why). */
static inline void tool_print_file(const char *dir, const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f))
        fputs(line, stdout);
    fclose(f);
}

#endif
