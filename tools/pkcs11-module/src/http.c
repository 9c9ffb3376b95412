/* HTTPS with libcurl: one request per call, a hard timeout, no redirects (a bearer token never follows one),
 * http and https only, answers capped at 4 MiB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ks.h"

#define MAX_ANSWER (4u * 1024 * 1024)

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }
void ks_http_global_init(void) { pthread_once(&g_once, init_once); }
/* curl_global_cleanup is not called: another library in the process may still use libcurl. */
void ks_http_global_cleanup(void) {}

struct sink {
  struct ks_buf *b;
  int overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
  struct sink *s = userdata;
  size_t n = size * nmemb;
  if (s->b->len + n > MAX_ANSWER) {
    s->overflow = 1;
    return 0;
  }
  char *p = realloc(s->b->data, s->b->len + n + 1);
  if (!p) return 0;
  memcpy(p + s->b->len, ptr, n);
  s->b->data = p;
  s->b->len += n;
  p[s->b->len] = 0;
  return n;
}

char *ks_form_escape(const char *s) {
  char *e = curl_easy_escape(NULL, s, 0);
  if (!e) return NULL;
  char *copy = strdup(e);
  curl_free(e);
  return copy;
}

void ks_http_request(const struct ks_config *c, const char *method, const char *url, const char *bearer,
                     const char *content_type, const char *body, const char *idempotency_key,
                     struct ks_http_result *out) {
  memset(out, 0, sizeof *out);
  /* The last guard: a bearer token is sent only when it is a b64token (auth.c ks_token_usable), whoever gave it. */
  if (bearer && !ks_token_usable(bearer)) {
    out->transport = CURLE_BAD_FUNCTION_ARGUMENT;
    snprintf(out->error, sizeof out->error, "the bearer token is no RFC 6750 b64token: not sent");
    return;
  }
  CURL *h = curl_easy_init();
  if (!h) {
    out->transport = CURLE_FAILED_INIT;
    snprintf(out->error, sizeof out->error, "libcurl could not start a request");
    return;
  }
  struct curl_slist *headers = NULL;
  char line[9000];
  headers = curl_slist_append(headers, "Accept: application/json, application/problem+json");
  if (bearer) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", bearer);
    headers = curl_slist_append(headers, line);
    explicit_bzero(line, sizeof line);
  }
  if (content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", content_type);
    headers = curl_slist_append(headers, line);
  }
  if (idempotency_key) {
    snprintf(line, sizeof line, "Idempotency-Key: %s", idempotency_key);
    headers = curl_slist_append(headers, line);
  }
  struct sink s = {&out->body, 0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM timeouts */
  curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_seconds);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->timeout_seconds < 10 ? c->timeout_seconds : 10L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  curl_easy_setopt(h, CURLOPT_USERAGENT, "keyserver-pkcs11/1.0");
  if (c->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    out->transport = (int)rc;
    out->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    out->too_large = s.overflow;
    if (s.overflow) snprintf(out->error, sizeof out->error, "the answer is larger than %u bytes", MAX_ANSWER);
    else snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
  if (rc != CURLE_OK) out->status = 0;
  /* The Authorization line's copy in the list: zeroed before it is freed (libcurl frees it as it is). */
  for (struct curl_slist *l = headers; l; l = l->next)
    if (l->data) explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
}

void ks_http_result_free(struct ks_http_result *r) {
  if (r->body.data) {
    explicit_bzero(r->body.data, r->body.len); /* token answers; a memset before free may be dropped */
    free(r->body.data);
  }
  r->body.data = NULL;
  r->body.len = 0;
}
