/* keyserver-pkcs11: no secret left in memory the module frees. Built as the module is (-O2: a memset right before free
 * is a dead store the compiler may drop) with -Wl,--wrap=free, so every free() of the module's own code comes here
 * first, and with cJSON's hooks, so the trees cJSON frees for it do too; each freed block is searched for the test's
 * secrets. libcurl's internal copies (its request buffer holds the Authorization line) are outside this test: the
 * module cannot reach them (ADR 0014 addendum 2026-12-07). */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../src/ks.h"

#define SECRET "S3CR3T-7f3a9c"

void __real_free(void *p);
void __wrap_free(void *p);

static int g_found;        /* freed blocks that still held SECRET */
static int g_watch;        /* searching only while a case runs */

void __wrap_free(void *p) {
  if (p && g_watch) {
    size_t n = malloc_usable_size(p);
    if (memmem(p, n, SECRET, strlen(SECRET))) g_found++;
  }
  __real_free(p);
}

static void hooked_free(void *p) { __wrap_free(p); }

static int passed, failed;
static void check(const char *name, int ok) {
  printf("%s %s\n", ok ? "ok  " : "FAIL", name);
  ok ? passed++ : failed++;
}

static char g_dir[64];

static const char *file_getenv(const char *name) {
  static char path[128];
  if (!strcmp(name, "KEYSERVER_PKCS11_CONFIG")) {
    snprintf(path, sizeof path, "%s/keyserver.conf", g_dir);
    return path;
  }
  if (!strcmp(name, "KEYSERVER_CLIENT_SECRET")) return "from-the-environment"; /* overrides the file's */
  return NULL;
}

/* A token endpoint and a Keyserver on loopback: POST /token grants a token that is SECRET, everything else is 404. */
static int g_fd;
static void *serve(void *arg) {
  (void)arg;
  for (;;) {
    int c = accept(g_fd, NULL, NULL);
    if (c < 0) return NULL;
    char req[16384];
    req[0] = 0;
    size_t n = 0;
    char *end = NULL;
    while (n < sizeof req - 1 && !(end = strstr(req, "\r\n\r\n"))) {
      ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
      if (r <= 0) break;
      n += (size_t)r;
      req[n] = 0;
    }
    const char *cl = end ? strcasestr(req, "\r\nContent-Length: ") : NULL;
    size_t want = cl ? strtoul(cl + 18, NULL, 10) : 0, have = end ? n - (size_t)(end + 4 - req) : 0;
    while (have < want) {
      char sink[4096];
      ssize_t r = recv(c, sink, sizeof sink, 0);
      if (r <= 0) break;
      have += (size_t)r;
    }
    char ans[512];
    if (!strncmp(req, "POST /token ", 12)) {
      const char *body = "{\"access_token\":\"" SECRET "-access\",\"refresh_token\":\"" SECRET "-refresh\",\"expires_in\":3600}";
      snprintf(ans, sizeof ans, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
               strlen(body), body);
    } else {
      snprintf(ans, sizeof ans, "HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nContent-Length: 15\r\n"
                                "Connection: close\r\n\r\n{\"code\":\"nope\"}");
    }
    send(c, ans, strlen(ans), MSG_NOSIGNAL);
    close(c);
  }
}

int main(void) {
  ks_log_open("debug", "/dev/null");
  cJSON_Hooks hooks = {malloc, hooked_free};
  cJSON_InitHooks(&hooks);
  snprintf(g_dir, sizeof g_dir, "/tmp/ks-p11-secrets-XXXXXX");
  if (!mkdtemp(g_dir)) return 2;

  { /* the configuration file, a value the environment overrides, and the configuration freed */
    char path[128];
    snprintf(path, sizeof path, "%s/keyserver.conf", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "KEYSERVER_URL=https://keyserver.example.com\nKEYSERVER_CLIENT_SECRET=\"" SECRET "-file\"\n"
               "KEYSERVER_CLIENT_KEY_PASSPHRASE=" SECRET "-passphrase\n");
    fclose(f);
    chmod(path, 0600);
    struct ks_config c;
    char err[400];
    g_found = 0, g_watch = 1;
    int rc = ks_config_load(&c, file_getenv, err, sizeof err);
    int during = g_found;
    ks_config_free(&c);
    g_watch = 0;
    check("ok reading a configuration file with a client secret frees no copy of it (file text, parsed value, overridden value)",
          rc == 0 && during == 0);
    check("ok ks_config_free zeroes every value it frees", g_found == during);
  }
  { /* ksctl's cache file */
    char path[128];
    snprintf(path, sizeof path, "%s/token.json", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"accessToken\":\"" SECRET "-access\",\"expiresAt\":1796000000000,\"refreshToken\":\"" SECRET "-refresh\"}");
    fclose(f);
    chmod(path, 0600);
    char *access = NULL, *refresh = NULL;
    double exp = 0;
    g_found = 0, g_watch = 1;
    int rc = ks_read_ksctl_cache(path, &access, &exp, &refresh);
    g_watch = 0;
    check("ok reading ksctl's token cache frees no copy of its tokens (file text, cJSON tree)", rc == 0 && g_found == 0);
    explicit_bzero(access, strlen(access));
    explicit_bzero(refresh, strlen(refresh));
    free(access);
    free(refresh);
  }
  { /* a token endpoint's answer */
    const char *body = "{\"access_token\":\"" SECRET "-a\",\"refresh_token\":\"" SECRET "-r\",\"expires_in\":60}";
    char *access = NULL, *refresh = NULL;
    long exp = 0;
    g_found = 0, g_watch = 1;
    CK_RV rv = ks_token_answer("secret", 200, body, strlen(body), &access, &refresh, &exp);
    g_watch = 0;
    check("ok parsing a token endpoint's answer frees no copy of its tokens (cJSON tree)", rv == CKR_OK && g_found == 0);
    explicit_bzero(access, strlen(access));
    explicit_bzero(refresh, strlen(refresh));
    free(access);
    free(refresh);
  }
  { /* an HTTP answer's body */
    struct ks_http_result r;
    memset(&r, 0, sizeof r);
    r.body.data = strdup("{\"access_token\":\"" SECRET "\"}");
    r.body.len = strlen(r.body.data);
    g_found = 0, g_watch = 1;
    ks_http_result_free(&r);
    g_watch = 0;
    check("ok ks_http_result_free zeroes the body it frees", g_found == 0);
  }
  { /* the whole path: client credentials with a secret, the token granted, a request with it, the token dropped */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    g_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bind(g_fd, (struct sockaddr *)&a, sizeof a);
    listen(g_fd, 16);
    getsockname(g_fd, (struct sockaddr *)&a, &al);
    pthread_t t;
    pthread_create(&t, NULL, serve, NULL);
    ks_http_global_init();
    struct ks_config c;
    memset(&c, 0, sizeof c);
    char url[64], err[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    ks_config_set(&c, "KEYSERVER_URL", url, err, sizeof err);
    snprintf(url + strlen(url), sizeof url - strlen(url), "/token");
    ks_config_set(&c, "KEYSERVER_TOKEN_ENDPOINT", url, err, sizeof err);
    ks_config_set(&c, "KEYSERVER_CLIENT_ID", "client", err, sizeof err);
    ks_config_set(&c, "KEYSERVER_SCOPE", "api://x/.default", err, sizeof err);
    ks_config_set(&c, "KEYSERVER_CLIENT_SECRET", SECRET "-client-secret", err, sizeof err);
    c.auth = KS_AUTH_SECRET;
    c.timeout_seconds = 5;
    struct ks_auth au;
    ks_auth_init(&au);
    struct ks_keylist l = {0};
    g_found = 0, g_watch = 1;
    CK_RV rv = ks_fetch_keys(&c, &au, &l);
    int during = g_found;
    ks_auth_free(&au);
    ks_config_free(&c);
    g_watch = 0;
    check("ok a token request and a request with the token free no copy of the secret or the token (form, answer, bearer copy)",
          rv == CKR_FUNCTION_FAILED && during == 0); /* the 404 of GET /api/keys: the token was granted and sent */
    check("ok ks_auth_free zeroes the token it frees", g_found == during);
    shutdown(g_fd, SHUT_RDWR);
    close(g_fd);
    pthread_join(t, NULL);
  }
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
  if (system(cmd)) return 2;
  printf("\npkcs11-module secrets: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
