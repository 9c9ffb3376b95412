/* The two Keyserver calls: GET /api/keys and POST /api/signorders, with a token renewed on 401, one retry of
 * a lost answer under the same Idempotency-Key (the Keyserver then returns the same signature without using
 * another usage), and every refusal logged with its problem code and mapped to a CKR_. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ks.h"

char *ks_hex(const unsigned char *p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  char *s = malloc(2 * n + 1);
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  s[2 * n] = 0;
  return s;
}

static int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int ks_unhex(const char *s, unsigned char *out, size_t outsz, size_t *outlen) {
  size_t n = strlen(s);
  if (n % 2 || n / 2 > outsz) return -1;
  for (size_t i = 0; i < n; i += 2) {
    int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  *outlen = n / 2;
  return 0;
}

/* Standard base64 with padding (RFC 4648 section 4), what the API's `message` is. */
static char *base64(const unsigned char *p, size_t n) {
  if (n > KS_MAX_MESSAGE) return NULL;
  char *s = malloc(4 * ((n + 2) / 3) + 1);
  if (s) EVP_EncodeBlock((unsigned char *)s, p, (int)n);
  return s;
}

static int is_uuid(const char *s) {
  if (strlen(s) != 36) return 0;
  for (int i = 0; i < 36; i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return 0;
    } else if (nibble(s[i]) < 0) return 0;
  }
  return 1;
}

/* Logs a refusal (status, problem code, detail, request id) and returns its CKR_. */
CK_RV ks_refusal(const char *what, const struct ks_http_result *r) {
  if (r->status == 0 && r->too_large) {
    ks_log(KS_LOG_ERROR, "%s: refused the Keyserver's answer: %s -> CKR_DEVICE_ERROR", what, r->error);
    return CKR_DEVICE_ERROR;
  }
  if (r->status == 0) {
    ks_log(KS_LOG_ERROR, "%s: the Keyserver is unreachable%s: %s -> CKR_DEVICE_ERROR", what, r->timed_out ? " (timeout)" : "", r->error);
    return CKR_DEVICE_ERROR;
  }
  cJSON *j = r->body.data ? cJSON_ParseWithLength(r->body.data, r->body.len) : NULL;
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
  const cJSON *detail = cJSON_GetObjectItemCaseSensitive(j, "detail");
  const cJSON *rid = cJSON_GetObjectItemCaseSensitive(j, "requestId");
  char c[80], d[240], q[80];
  ks_sanitize(c, sizeof c, cJSON_IsString(code) ? code->valuestring : "", 64);
  ks_sanitize(d, sizeof d, cJSON_IsString(detail) ? detail->valuestring : "", 200);
  ks_sanitize(q, sizeof q, cJSON_IsString(rid) ? rid->valuestring : "", 64);
  CK_RV rv = ks_problem_to_rv(r->status, c[0] ? c : NULL);
  ks_log(KS_LOG_ERROR, "%s refused: HTTP %ld %s%s%s%s -> %s", what, r->status, c[0] ? c : "(no problem code)", d[0] ? " (" : "",
         d, d[0] ? ")" : "", ks_rv_name(rv));
  if (r->status >= 300 && r->status < 400)
    ks_log(KS_LOG_ERROR, "%s: a redirect is never followed (a bearer token stays with KEYSERVER_URL): is it the API's address?", what);
  if (rv == CKR_DEVICE_ERROR && c[0] && !strcmp(c, "conflict"))
    ks_log(KS_LOG_ERROR, "%s: the Keyserver is still signing the first request: raise KEYSERVER_PKCS11_TIMEOUT", what);
  if (q[0]) ks_log(KS_LOG_INFO, "%s: request id %s", what, q);
  cJSON_Delete(j);
  return rv;
}

/* A 401 with the API's one refusal body (`invalid_token`): its guard refused the token before any handler ran, so the
 * request was not carried out (docs/security.md "Token handling"). Any other 401 (a proxy's page) proves nothing. */
static int invalid_token(const struct ks_http_result *r) {
  if (r->status != 401 || !r->body.data) return 0;
  cJSON *j = cJSON_ParseWithLength(r->body.data, r->body.len);
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
  int yes = cJSON_IsString(code) && !strcmp(code->valuestring, "invalid_token");
  cJSON_Delete(j);
  return yes;
}

/* One authenticated request. A 401 invalid_token drops the token (ks_auth_refused: the module's copy and ksctl's cache
 * entry) and, for a token the module obtained (not KEYSERVER_TOKEN), sends the request once more with a fresh one. */
static CK_RV call(const struct ks_config *c, struct ks_auth *a, const char *method, const char *path, const char *body,
                  const char *idem, struct ks_http_result *r) {
  char url[4300];
  snprintf(url, sizeof url, "%s%s", c->api_url, path);
  int renew = 0;
  for (int attempt = 0;; attempt++) {
    char *token = NULL;
    CK_RV rv = ks_auth_token(a, c, renew, &token);
    if (attempt > 0) ks_http_result_free(r);
    if (rv != CKR_OK) return rv;
    ks_http_request(c, method, url, token, body ? "application/json" : NULL, body, idem, r);
    int refused = invalid_token(r);
    if (refused) ks_auth_refused(a, c, token);
    explicit_bzero(token, strlen(token)); /* a memset before free may be dropped by the compiler */
    free(token);
    renew = 0;
    if (attempt >= 2) return CKR_OK;
    if (refused && attempt == 0) {
      if (c->auth == KS_AUTH_TOKEN) {
        ks_log(KS_LOG_ERROR, "%s %s: the Keyserver refused KEYSERVER_TOKEN (expired?) and a ready token cannot be renewed", method, path);
        return CKR_OK;
      }
      ks_log(KS_LOG_INFO, "%s %s: 401 invalid_token, renewing the token", method, path);
      renew = 1;
      continue;
    }
    /* A lost answer, or a reservation the server gave back: the same Idempotency-Key is safe to send again. */
    int lost = r->status == 0 && idem;
    int expired = r->status == 503 && r->body.data && strstr(r->body.data, "\"reservation_expired\"");
    if ((lost || expired) && attempt == 0) {
      ks_log(KS_LOG_WARN, "%s %s: %s, sending it again", method, path, lost ? "no answer" : "reservation expired");
      sleep(1);
      continue;
    }
    return CKR_OK;
  }
}

CK_RV ks_fetch_keys(const struct ks_config *c, struct ks_auth *a, struct ks_keylist *out) {
  struct ks_http_result r = {0};
  CK_RV rv = call(c, a, "GET", "/api/keys", NULL, NULL, &r);
  if (rv != CKR_OK) return rv;
  if (r.status != 200) {
    rv = ks_refusal("GET /api/keys", &r);
  } else {
    char err[200];
    if (ks_keys_parse(r.body.data ? r.body.data : "", r.body.len, out, err, sizeof err)) {
      ks_log(KS_LOG_ERROR, "%s", err);
      rv = CKR_DEVICE_ERROR;
    } else {
      if (!c->eddsa) ks_keys_drop_ed25519(out);
      ks_log(KS_LOG_INFO, "%zu signing key(s) from GET /api/keys", out->n);
    }
  }
  ks_http_result_free(&r);
  return rv;
}

static void description(const struct ks_config *c, CK_MECHANISM_TYPE m, char *out, size_t outsz) {
  char prog[64];
  ks_sanitize(prog, sizeof prog, program_invocation_short_name, 48);
  if (c->description) ks_sanitize(out, outsz, c->description, 1000);
  else snprintf(out, outsz, "PKCS#11 %s signature by %s", ks_mech_name(m), prog[0] ? prog : "a program");
  /* The Keyserver wants 8 to 1000 characters after trimming. */
  size_t n = strlen(out);
  while (n && out[n - 1] == ' ') out[--n] = 0;
  if (n < 8) snprintf(out, outsz, "PKCS#11 signature");
}

/* The signature in a sign order's answer ({"result": hex}): exactly `siglen` bytes that verify over `input` with the key's
 * certificate, copied to `sig`; CKR_DEVICE_ERROR (logged) for anything else. The answer is the server's (or a proxy's):
 * any bytes, any length, NUL included. */
CK_RV ks_sign_answer(const struct ks_key *key, const struct ks_mech_plan *plan, const unsigned char *input, size_t inlen,
                     const char *body, size_t bodylen, unsigned char *sig, size_t siglen) {
  char keyshown[140];
  ks_sanitize(keyshown, sizeof keyshown, key->keyid, 128);
  cJSON *ans = body ? cJSON_ParseWithLength(body, bodylen) : NULL;
  const cJSON *res = cJSON_GetObjectItemCaseSensitive(ans, "result");
  size_t got = 0;
  unsigned char buf[1024];
  CK_RV rv = CKR_OK, checked = CKR_OK;
  if (!cJSON_IsString(res) || ks_unhex(res->valuestring, buf, sizeof buf, &got) || got != siglen) {
    ks_log(KS_LOG_ERROR, "sign order with key %s: the answer holds no %zu-byte signature -> CKR_DEVICE_ERROR", keyshown, siglen);
    rv = CKR_DEVICE_ERROR;
  } else if ((checked = ks_verify(key, plan, input, inlen, buf, got)) != CKR_OK) {
    /* Never CKR_OK with bytes that are not this key's signature of this input (a proxy, a bug, a rotated key
     * whose certificate the token does not hold): the caller would ship a signature nobody can verify. */
    ks_log(KS_LOG_ERROR, "sign order with key %s: the answer's signature does not verify with the key's certificate (%s) -> "
           "CKR_DEVICE_ERROR", keyshown, ks_rv_name(checked));
    rv = CKR_DEVICE_ERROR;
  } else {
    memcpy(sig, buf, siglen);
    ks_log(KS_LOG_INFO, "signed with key %s (%s)", keyshown, ks_mech_name(plan->mech));
  }
  cJSON_Delete(ans);
  return rv;
}

CK_RV ks_sign_order(const struct ks_config *c, struct ks_auth *a, const struct ks_key *key, const struct ks_mech_plan *plan,
                    const unsigned char *input, size_t inlen, unsigned char *sig, size_t siglen) {
  if (!c->operation_id) {
    ks_log(KS_LOG_ERROR, "KEYSERVER_OPERATION_ID is not set: signatures are made under an approved operation");
    return CKR_FUNCTION_FAILED;
  }
  if (!is_uuid(c->operation_id)) {
    ks_log(KS_LOG_ERROR, "KEYSERVER_OPERATION_ID is not an operation id (a UUID)");
    return CKR_FUNCTION_FAILED;
  }
  unsigned char rnd[16];
  char idem[64], desc[1001];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return CKR_FUNCTION_FAILED;
  char *rh = ks_hex(rnd, sizeof rnd);
  /* A digest order carries the digest in hex; a message order (CKM_EDDSA) the message in base64. */
  char *hex = plan->message ? base64(input, inlen) : ks_hex(input, inlen);
  cJSON *j = cJSON_CreateObject();
  char *body = NULL;
  CK_RV rv = CKR_HOST_MEMORY;
  if (!rh || !hex || !j) goto done;
  snprintf(idem, sizeof idem, "pkcs11-%s", rh);
  description(c, plan->mech, desc, sizeof desc);
  cJSON_AddStringToObject(j, "operationid", c->operation_id);
  cJSON_AddStringToObject(j, "keyid", key->keyid);
  if (plan->message) {
    cJSON_AddStringToObject(j, "message", hex);
  } else {
    cJSON_AddStringToObject(j, "inputdata", hex);
    cJSON_AddStringToObject(j, "inputformat", "hex");
    cJSON_AddStringToObject(j, "inputpadding", plan->padding);
    cJSON_AddStringToObject(j, "signatureformat", plan->format);
  }
  cJSON_AddStringToObject(j, "description", desc);
  body = cJSON_PrintUnformatted(j);
  if (!body) goto done;
  char keyshown[140];
  ks_sanitize(keyshown, sizeof keyshown, key->keyid, 128);
  if (plan->message)
    ks_log(KS_LOG_DEBUG, "sign order: key %s, %s, a %zu-byte message", keyshown, ks_mech_name(plan->mech), inlen);
  else
    ks_log(KS_LOG_DEBUG, "sign order: key %s, %s, inputpadding %s, signatureformat %s", keyshown, ks_mech_name(plan->mech),
           plan->padding, plan->format);
  struct ks_http_result r = {0};
  rv = call(c, a, "POST", "/api/signorders", body, idem, &r);
  if (rv == CKR_OK) {
    if (r.status != 201 && r.status != 200) {
      char what[200];
      snprintf(what, sizeof what, "sign order with key %s", keyshown);
      rv = ks_refusal(what, &r);
    } else {
      rv = ks_sign_answer(key, plan, input, inlen, r.body.data, r.body.len, sig, siglen);
    }
  }
  ks_http_result_free(&r);
done:
  free(rh);
  free(hex);
  free(body);
  cJSON_Delete(j);
  return rv;
}
