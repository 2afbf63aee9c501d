/* The compiled echo middleware: every hex line back unchanged, flushed per
 * line (what a middleware must do to keep replay flowing). */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &capacity, stdin)) > 0) {
        if (fwrite(line, 1, (size_t)length, stdout) != (size_t)length) return 1;
        if (fflush(stdout) != 0) return 1;
    }
    free(line);
    return 0;
}
