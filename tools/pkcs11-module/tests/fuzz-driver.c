/* A libFuzzer stand-in for gcc (no clang on the build machines): runs LLVMFuzzerTestOneInput over every file of the
 * corpus directories given, then over seeded mutations of them (bit flips, interesting bytes, JSON and PEM tokens,
 * cut, repeated and spliced ranges). No coverage feedback: the same seed gives the same inputs, so a run is a
 * deterministic test (`make fuzz-check`) and a long run a search (`make fuzz`). Built with AddressSanitizer and
 * UndefinedBehaviorSanitizer (every report aborts); the input that failed is written to crash-<n> in -artifact_prefix.
 *   fuzz-parsers [-runs=N] [-seed=N] [-max_len=N] [-max_total_time=S] [-artifact_prefix=DIR/] DIR|FILE...   */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sanitizer/common_interface_defs.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

struct input {
  unsigned char *p;
  size_t n;
};
static struct input *g_corpus;
static size_t g_count, g_cap;
static const unsigned char *g_current;
static size_t g_current_len;
static unsigned long long g_iteration;
static char g_prefix[512] = "./";

static void on_death(void) {
  if (!g_current) {
    fprintf(stderr, "fuzz: a report after the inputs (LeakSanitizer at exit: a leak of some input's run)\n");
    return;
  }
  char path[600];
  snprintf(path, sizeof path, "%scrash-%llu", g_prefix, g_iteration);
  FILE *f = fopen(path, "wb");
  if (f) fwrite(g_current, 1, g_current_len, f);
  if (f) fclose(f);
  fprintf(stderr, "fuzz: input %llu failed; written to %s\n", g_iteration, path);
}

static void add(unsigned char *p, size_t n) {
  if (g_count == g_cap) {
    g_cap = g_cap ? 2 * g_cap : 64;
    g_corpus = realloc(g_corpus, g_cap * sizeof *g_corpus);
    if (!g_corpus) abort();
  }
  g_corpus[g_count].p = p;
  g_corpus[g_count++].n = n;
}

static void load_file(const char *path, size_t max_len) {
  FILE *f = fopen(path, "rb");
  if (!f) return;
  unsigned char *p = malloc(max_len ? max_len : 1);
  size_t n = p ? fread(p, 1, max_len, f) : 0;
  fclose(f);
  if (p) add(p, n);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void load(const char *path, size_t max_len) {
  DIR *d = opendir(path);
  if (!d) {
    load_file(path, max_len);
    return;
  }
  char **names = NULL;
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    names = realloc(names, (n + 1) * sizeof *names);
    if (!names || asprintf(&names[n], "%s/%s", path, e->d_name) < 0) abort();
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name); /* the same order everywhere: the run depends on the seed only */
  for (size_t i = 0; i < n; i++) {
    load_file(names[i], max_len);
    free(names[i]);
  }
  free(names);
}

static unsigned long long g_rng;
static unsigned long long rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static const char *TOKENS[] = {"\"", "\\", "\\u0000", "\\ud800", "\\uDFFF", "{", "}", "[", "]", ":", ",", "null", "true", "-1",
                               "1e999", "-0", "NaN", "18446744073709551616", "\"result\":", "\"accessToken\":", "\"expiresAt\":",
                               "\"refreshToken\":", "\"access_token\":", "\"expires_in\":", "\"code\":", "\"keyid\":",
                               "\"keyinfo\":\"FW ", "\"certificate\":", "-----BEGIN CERTIFICATE-----\\n", "-----END CERTIFICATE-----",
                               "=", "\n", "\r\n", "#", "KEYSERVER_URL=", "http://127.0.0.1", "https://", "http://[::1]", "@", "%00",
                               "\xc0\x80", "\xe2\x80\xae", "\xff", "00", "ff", "SHA-384", "SHA-512"};
static const unsigned char INTERESTING[] = {0, 1, 0x7f, 0x80, 0xff, '"', '\\', '{', '}', '[', ']', ':', ',', '0', '9', 'a', 'f', '=', '\n', ' '};

/* One mutation of `in` into `out` (capacity max_len); returns the new length. */
static size_t mutate(const struct input *in, unsigned char *out, size_t max_len) {
  size_t n = in->n < max_len ? in->n : max_len;
  memcpy(out, in->p, n);
  int ops = 1 + (int)below(8);
  for (int k = 0; k < ops; k++) {
    size_t at = below(n + 1), len = 1 + below(n < 64 ? n + 1 : 64);
    switch (below(9)) {
      case 0: /* flip a bit (the target byte only rarely) */
        if (n > 1) {
          size_t i = 1 + below(n - 1);
          out[i] ^= (unsigned char)(1u << below(8));
        }
        break;
      case 1:
        if (n > 1) out[1 + below(n - 1)] = INTERESTING[below(sizeof INTERESTING)];
        break;
      case 2: /* cut a range */
        if (at > 0 && at < n) {
          if (len > n - at) len = n - at;
          memmove(out + at, out + at + len, n - at - len);
          n -= len;
        }
        break;
      case 3: /* a token */ {
        const char *t = TOKENS[below(sizeof TOKENS / sizeof TOKENS[0])];
        size_t tl = strlen(t);
        if (at == 0) at = 1;
        if (at <= n && n + tl <= max_len) {
          memmove(out + at + tl, out + at, n - at);
          memcpy(out + at, t, tl);
          n += tl;
        }
        break;
      }
      case 4: /* repeat a range */
        if (at > 0 && at < n) {
          if (len > n - at) len = n - at;
          size_t times = 1 + below(16);
          for (size_t t = 0; t < times && n + len <= max_len; t++) {
            memmove(out + at + len, out + at, n - at);
            n += len;
          }
        }
        break;
      case 5: /* random bytes */
        for (size_t i = 0; i < len && at + i < n; i++)
          if (at + i > 0) out[at + i] = (unsigned char)rnd();
        break;
      case 6: /* splice in a piece of another input of the same target */ {
        const struct input *o = &g_corpus[below(g_count)];
        if (o->n > 1 && n > 0 && o->p[0] == out[0]) {
          size_t from = 1 + below(o->n - 1), l = 1 + below(o->n - from);
          if (at == 0) at = 1;
          if (at <= n && n + l <= max_len) {
            memmove(out + at + l, out + at, n - at);
            memcpy(out + at, o->p + from, l);
            n += l;
          }
        }
        break;
      }
      case 7: /* truncate */
        if (n > 1) n = 1 + below(n);
        break;
      case 8: /* another target for the same bytes */
        if (n > 0 && below(16) == 0) out[0] = (unsigned char)below(8);
        break;
    }
  }
  return n;
}

int main(int argc, char **argv) {
  unsigned long long runs = 0, seed = 1;
  size_t max_len = 16384;
  long max_time = 0;
  int paths = 0;
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "-runs=", 6)) runs = strtoull(argv[i] + 6, NULL, 10);
    else if (!strncmp(argv[i], "-seed=", 6)) seed = strtoull(argv[i] + 6, NULL, 10);
    else if (!strncmp(argv[i], "-max_len=", 9)) max_len = strtoull(argv[i] + 9, NULL, 10);
    else if (!strncmp(argv[i], "-max_total_time=", 16)) max_time = strtol(argv[i] + 16, NULL, 10);
    else if (!strncmp(argv[i], "-artifact_prefix=", 17)) snprintf(g_prefix, sizeof g_prefix, "%s", argv[i] + 17);
    else if (argv[i][0] == '-') {
      fprintf(stderr, "fuzz: unknown option %s\n", argv[i]);
      return 2;
    } else {
      load(argv[i], max_len);
      paths++;
    }
  }
  if (!paths || !g_count) {
    fprintf(stderr, "usage: %s [-runs=N] [-seed=N] [-max_len=N] [-max_total_time=S] [-artifact_prefix=DIR/] CORPUS...\n", argv[0]);
    return 2;
  }
  g_rng = seed ? seed * 0x9e3779b97f4a7c15ULL : 1;
  __sanitizer_set_death_callback(on_death);
  LLVMFuzzerInitialize(&argc, &argv);
  for (size_t i = 0; i < g_count; i++) {
    g_current = g_corpus[i].p, g_current_len = g_corpus[i].n;
    LLVMFuzzerTestOneInput(g_corpus[i].p, g_corpus[i].n);
    g_iteration++;
  }
  unsigned char *buf = malloc(max_len);
  time_t start = time(NULL);
  unsigned long long done = 0;
  for (; runs == 0 ? max_time > 0 : done < runs; done++) {
    if (max_time > 0 && (done & 255) == 0 && time(NULL) - start >= max_time) break;
    size_t n = mutate(&g_corpus[below(g_count)], buf, max_len);
    /* An exact-size copy: a read one byte past the input is an ASan report, as under libFuzzer. */
    unsigned char *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    g_current = exact, g_current_len = n;
    LLVMFuzzerTestOneInput(exact, n);
    g_current = NULL;
    free(exact);
    g_iteration++;
  }
  printf("fuzz: %zu corpus inputs and %llu mutations (seed %llu) passed in %ld s\n", g_count, done, seed, (long)(time(NULL) - start));
  for (size_t i = 0; i < g_count; i++) free(g_corpus[i].p);
  free(g_corpus);
  free(buf);
  return 0;
}
