/* Reference triad for scripts/compare-cpu.sh: b[i] = a[i] + 3.0 * c[i] over
 * f64 buffers, OpenMP static schedule, bytes counted as read + written
 * (24 per element), median of the timed passes after one warm-up.
 * Usage: triad ELEMENTS PASSES   prints GB/s */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : (16L << 20);
    int passes = argc > 2 ? atoi(argv[2]) : 15;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    double *t = malloc(passes * sizeof *t);
    if (!a || !b || !c || !t) return 1;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) { a[i] = (double)(i % 251); b[i] = 0; c[i] = (double)(i % 13); }
    for (int p = -1; p < passes; p++) {
        double t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++) b[i] = a[i] + 3.0 * c[i];
        double dt = omp_get_wtime() - t0;
        if (p >= 0) t[p] = dt;
    }
    for (long i = 0; i < n; i += n / 7 + 1)
        if (b[i] != a[i] + 3.0 * c[i]) { fprintf(stderr, "triad wrong at %ld\n", i); return 2; }
    qsort(t, passes, sizeof *t, cmp);
    printf("%.3f\n", 24.0 * n / t[passes / 2] / 1e9);
    return 0;
}
