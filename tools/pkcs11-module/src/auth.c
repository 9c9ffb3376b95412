/* Access tokens, the ways ksctl gets them: client credentials with a secret, with a certificate
 * (private_key_jwt), with an Azure DevOps / GitHub federated token (WIF), a PKCE login that ksctl cached
 * (refreshed with its refresh token and written back to ksctl's cache), or a ready token.
 * A token is renewed before it expires, so a process that signs for hours keeps working. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ks.h"

void ks_auth_init(struct ks_auth *a) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->lock, NULL);
}

/* Zeroes a string that held a secret where the compiler cannot drop it (a memset before free may be dropped). */
static void wipe_str(char *s) {
  if (s) explicit_bzero(s, strlen(s));
}

static void wipe_free(char *s) {
  if (!s) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

void ks_auth_free(struct ks_auth *a) {
  wipe_free(a->access_token);
  a->access_token = NULL;
  pthread_mutex_destroy(&a->lock);
}

/* A bearer token goes into an HTTP header as it is (libcurl sends a header unchanged): RFC 6750 §2.1's b64token only
 * (letters, digits, -._~+/ then '=' padding at the end; a JWT is one), at most 8 KiB, the rule ksctl applies
 * (client.ts bearerToken). CR LF would add a header; a quote, comma or semicolon is no token of any identity provider. */
int ks_token_usable(const char *t) {
  size_t n = 0;
  if (!t) return 0;
  for (; t[n]; n++) {
    unsigned char ch = (unsigned char)t[n];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
          ch == '~' || ch == '+' || ch == '/'))
      break;
  }
  if (n == 0) return 0;
  while (t[n] == '=') n++;
  return t[n] == 0 && n <= 8192;
}

/* A lifetime in seconds from a JSON number (any double: 1e300, -inf, NaN), 300 when it is not 1 s to 1 day. */
static long lifetime_of(double seconds) {
  return seconds >= 1 && seconds <= KS_MAX_TOKEN_LIFETIME ? (long)seconds : 300;
}

long ks_refresh_margin(long lifetime) {
  long lo = lifetime / 2 < 30 ? lifetime / 2 : 30;
  long m = lifetime / 4;
  if (m < lo) m = lo;
  if (m > 300) m = 300;
  return m;
}

static char *b64url(const unsigned char *p, size_t n) {
  size_t cap = 4 * ((n + 2) / 3) + 1;
  char *out = malloc(cap);
  if (!out) return NULL;
  int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
  int j = 0;
  for (int i = 0; i < len; i++) {
    char ch = out[i];
    if (ch == '=') break;
    out[j++] = ch == '+' ? '-' : ch == '/' ? '_' : ch;
  }
  out[j] = 0;
  return out;
}

char *ks_certificate_assertion(const char *cert_file, const char *key_file, const char *passphrase, const char *client_id,
                               const char *audience, time_t now, char *err, size_t errsz) {
  char *result = NULL, *h64 = NULL, *c64 = NULL, *s64 = NULL, *input = NULL, *hjson = NULL, *cjson = NULL, *thumb = NULL;
  unsigned char *der = NULL, *sig = NULL;
  size_t siglen = 0;
  X509 *cert = NULL;
  EVP_PKEY *key = NULL;
  EVP_MD_CTX *md = NULL;
  cJSON *hdr = NULL, *claims = NULL;
  FILE *f = fopen(cert_file, "re");
  if (!f) {
    snprintf(err, errsz, "certificate file not readable: %s", strerror(errno));
    goto done;
  }
  cert = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (!cert) {
    snprintf(err, errsz, "the certificate file holds no PEM certificate");
    goto done;
  }
  f = fopen(key_file ? key_file : cert_file, "re");
  if (!f) {
    snprintf(err, errsz, "private key file not readable: %s", strerror(errno));
    goto done;
  }
  key = PEM_read_PrivateKey(f, NULL, NULL, (void *)(passphrase ? passphrase : ""));
  fclose(f);
  if (!key) {
    snprintf(err, errsz, "no usable PEM private key (wrong passphrase?)");
    goto done;
  }
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    snprintf(err, errsz, "certificate credentials need an RSA key (Entra checks them with PS256)");
    goto done;
  }
  if (X509_check_private_key(cert, key) != 1) {
    snprintf(err, errsz, "the private key does not belong to the certificate");
    goto done;
  }
  int derlen = i2d_X509(cert, &der);
  unsigned char sha[32];
  if (derlen <= 0 || !EVP_Digest(der, (size_t)derlen, sha, NULL, EVP_sha256(), NULL)) goto fail;
  thumb = b64url(sha, sizeof sha);
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1) goto fail;
  rnd[6] = (unsigned char)((rnd[6] & 0x0f) | 0x40);
  rnd[8] = (unsigned char)((rnd[8] & 0x3f) | 0x80);
  char jti[37];
  snprintf(jti, sizeof jti, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
           rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9], rnd[10], rnd[11], rnd[12], rnd[13], rnd[14], rnd[15]);
  hdr = cJSON_CreateObject();
  claims = cJSON_CreateObject();
  if (!hdr || !claims || !thumb) goto fail;
  cJSON_AddStringToObject(hdr, "alg", "PS256");
  cJSON_AddStringToObject(hdr, "typ", "JWT");
  cJSON_AddStringToObject(hdr, "x5t#S256", thumb);
  cJSON_AddStringToObject(claims, "aud", audience);
  cJSON_AddStringToObject(claims, "iss", client_id);
  cJSON_AddStringToObject(claims, "sub", client_id);
  cJSON_AddStringToObject(claims, "jti", jti);
  cJSON_AddNumberToObject(claims, "iat", (double)now);
  cJSON_AddNumberToObject(claims, "nbf", (double)now);
  cJSON_AddNumberToObject(claims, "exp", (double)(now + 600));
  hjson = cJSON_PrintUnformatted(hdr);
  cjson = cJSON_PrintUnformatted(claims);
  if (!hjson || !cjson) goto fail;
  h64 = b64url((unsigned char *)hjson, strlen(hjson));
  c64 = b64url((unsigned char *)cjson, strlen(cjson));
  if (!h64 || !c64) goto fail;
  size_t ilen = strlen(h64) + 1 + strlen(c64);
  input = malloc(ilen + 1);
  if (!input) goto fail;
  snprintf(input, ilen + 1, "%s.%s", h64, c64);
  md = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  if (!md || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1) goto fail;
  if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1) goto fail;
  if (EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input, ilen) != 1) goto fail;
  sig = malloc(siglen);
  if (!sig || EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, ilen) != 1) goto fail;
  s64 = b64url(sig, siglen);
  if (!s64) goto fail;
  result = malloc(ilen + 1 + strlen(s64) + 1);
  if (result) sprintf(result, "%s.%s", input, s64);
  goto done;
fail:
  snprintf(err, errsz, "could not sign the client assertion");
done:
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  X509_free(cert);
  OPENSSL_free(der);
  cJSON_Delete(hdr);
  cJSON_Delete(claims);
  free(hjson);
  free(cjson);
  free(h64);
  free(c64);
  wipe_free(s64); /* the assertion's signature: with `input` it is a credential for ten minutes */
  free(input);
  if (sig) explicit_bzero(sig, siglen);
  free(sig);
  free(thumb);
  return result;
}

int ks_ksctl_cache_file(const struct ks_config *c, char *out, size_t outsz) {
  char id[512];
  int n = snprintf(id, sizeof id, "%s|%s|%s", c->token_endpoint ? c->token_endpoint : "undefined",
                   c->client_id ? c->client_id : "undefined", c->scope ? c->scope : "undefined");
  if (n < 0 || (size_t)n >= sizeof id) return -1;
  unsigned char sha[32];
  if (!EVP_Digest(id, (size_t)n, sha, NULL, EVP_sha256(), NULL)) return -1;
  char *hex = ks_hex(sha, 16);
  if (!hex) return -1;
  char dir[4096];
  if (c->cache_dir) snprintf(dir, sizeof dir, "%s", c->cache_dir);
  else {
    const char *home = getenv("HOME");
    if (!home) {
      free(hex);
      return -1;
    }
    snprintf(dir, sizeof dir, "%s/.cache/ksctl", home);
  }
  n = snprintf(out, outsz, "%s/token-%s.json", dir, hex);
  free(hex);
  return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

/* The token endpoint's answer. */
struct grant {
  char *access_token;
  char *refresh_token;
  long expires_in;
};

static void grant_free(struct grant *g) {
  wipe_free(g->access_token);
  wipe_free(g->refresh_token);
  memset(g, 0, sizeof *g);
}

CK_RV ks_token_answer(const char *method, long status, const char *body, size_t len, char **access, char **refresh, long *expires_in) {
  *access = *refresh = NULL;
  *expires_in = 0;
  CK_RV rv = CKR_OK;
  cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
  cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
  cJSON *rt = cJSON_GetObjectItemCaseSensitive(j, "refresh_token");
  if (status != 200 || !cJSON_IsString(at) || !ks_token_usable(at->valuestring)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    char code[80];
    ks_sanitize(code, sizeof code, cJSON_IsString(e) ? e->valuestring : status == 200 ? "no usable access_token" : "no error code", 64);
    ks_log(KS_LOG_ERROR, "the token endpoint refused the %s credentials: HTTP %ld %s", method, status, code);
    rv = status >= 500 ? CKR_DEVICE_ERROR : CKR_USER_NOT_LOGGED_IN;
  } else {
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    *access = strdup(at->valuestring);
    *refresh = cJSON_IsString(rt) ? strdup(rt->valuestring) : NULL;
    *expires_in = lifetime_of(cJSON_IsNumber(ex) ? ex->valuedouble : cJSON_IsString(ex) ? strtod(ex->valuestring, NULL) : 0);
    if (!*access) rv = CKR_HOST_MEMORY;
  }
  /* cJSON frees its strings as they are: the tokens' copies in the parsed tree are zeroed first. */
  if (cJSON_IsString(at)) wipe_str(at->valuestring);
  if (cJSON_IsString(rt)) wipe_str(rt->valuestring);
  cJSON_Delete(j);
  return rv;
}

/* POSTs a form (pairs of name, value; NULL-terminated) to the token endpoint. */
static CK_RV token_request(const struct ks_config *c, const char **pairs, struct grant *g) {
  if (!c->token_endpoint) {
    ks_log(KS_LOG_ERROR, "KEYSERVER_TOKEN_ENDPOINT is not set (https://login.microsoftonline.com/<TENANT_ID>/oauth2/v2.0/token)");
    return CKR_USER_NOT_LOGGED_IN;
  }
  size_t cap = 1, len = 0;
  for (int i = 0; pairs[i]; i += 2) cap += strlen(pairs[i]) + 3 * strlen(pairs[i + 1]) + 2;
  char *form = calloc(1, cap);
  if (!form) return CKR_HOST_MEMORY;
  for (int i = 0; pairs[i]; i += 2) {
    char *v = ks_form_escape(pairs[i + 1]);
    if (!v) {
      wipe_free(form);
      return CKR_HOST_MEMORY;
    }
    len += (size_t)snprintf(form + len, cap - len, "%s%s=%s", i ? "&" : "", pairs[i], v);
    wipe_free(v);
  }
  struct ks_http_result r;
  ks_http_request(c, "POST", c->token_endpoint, NULL, "application/x-www-form-urlencoded", form, NULL, &r);
  wipe_free(form);
  CK_RV rv;
  if (r.status == 0) {
    ks_log(KS_LOG_ERROR, "token endpoint unreachable%s: %s", r.timed_out ? " (timeout)" : "", r.error);
    rv = CKR_DEVICE_ERROR;
  } else {
    rv = ks_token_answer(ks_auth_name(c->auth), r.status, r.body.data, r.body.len, &g->access_token, &g->refresh_token, &g->expires_in);
  }
  ks_http_result_free(&r);
  return rv;
}

/* The pipeline's OIDC token: AZURE_FEDERATED_TOKEN_FILE, or Azure DevOps' SYSTEM_OIDCREQUESTURI. */
static CK_RV federated_assertion(const struct ks_config *c, char **out) {
  if (c->federated_token_file) {
    FILE *f = fopen(c->federated_token_file, "re");
    if (!f) {
      ks_log(KS_LOG_ERROR, "federated token file not readable: %s", strerror(errno));
      return CKR_USER_NOT_LOGGED_IN;
    }
    char *buf = calloc(1, 65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    if (!buf) return CKR_HOST_MEMORY;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (!n) {
      explicit_bzero(buf, 65537);
      free(buf);
      ks_log(KS_LOG_ERROR, "the federated token file is empty");
      return CKR_USER_NOT_LOGGED_IN;
    }
    *out = buf;
    return CKR_OK;
  }
  if (!c->oidc_request_uri || !c->system_access_token || !c->service_connection_id) {
    ks_log(KS_LOG_ERROR, "workload identity needs SYSTEM_OIDCREQUESTURI, SYSTEM_ACCESSTOKEN and "
                         "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, or AZURE_FEDERATED_TOKEN_FILE");
    return CKR_USER_NOT_LOGGED_IN;
  }
  if (!ks_token_usable(c->system_access_token)) {
    ks_log(KS_LOG_ERROR, "SYSTEM_ACCESSTOKEN is no bearer token (RFC 6750 b64token): not sent");
    return CKR_USER_NOT_LOGGED_IN;
  }
  char *sc = ks_form_escape(c->service_connection_id);
  if (!sc) return CKR_HOST_MEMORY;
  size_t cap = strlen(c->oidc_request_uri) + strlen(sc) + 64;
  char *url = malloc(cap);
  if (!url) {
    free(sc);
    return CKR_HOST_MEMORY;
  }
  snprintf(url, cap, "%s%capi-version=7.1&serviceConnectionId=%s", c->oidc_request_uri,
           strchr(c->oidc_request_uri, '?') ? '&' : '?', sc);
  free(sc);
  struct ks_http_result r;
  ks_http_request(c, "POST", url, c->system_access_token, "application/json", "", NULL, &r);
  free(url);
  cJSON *j = r.body.data ? cJSON_ParseWithLength(r.body.data, r.body.len) : NULL;
  cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "oidcToken");
  CK_RV rv = CKR_OK;
  if (r.status == 0) {
    ks_log(KS_LOG_ERROR, "the pipeline's OIDC endpoint is unreachable: %s", r.error);
    rv = CKR_DEVICE_ERROR;
  } else if (r.status != 200 || !cJSON_IsString(t)) {
    ks_log(KS_LOG_ERROR, "the pipeline's OIDC token was refused: HTTP %ld", r.status);
    rv = r.status >= 500 ? CKR_DEVICE_ERROR : CKR_USER_NOT_LOGGED_IN;
  } else if (!(*out = strdup(t->valuestring))) {
    rv = CKR_HOST_MEMORY;
  }
  if (cJSON_IsString(t)) wipe_str(t->valuestring);
  cJSON_Delete(j);
  ks_http_result_free(&r);
  return rv;
}

int ks_parse_ksctl_cache(const char *text, size_t len, char **access, double *expires_ms, char **refresh) {
  *access = *refresh = NULL;
  cJSON *j = cJSON_ParseWithLength(text, len);
  cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accessToken");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "expiresAt");
  cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "refreshToken");
  int rc = -1;
  /* expiresAt in ms since the epoch, in a range a time_t holds whatever the file says. */
  if (cJSON_IsString(a) && cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < 1e15) {
    *access = strdup(a->valuestring);
    *expires_ms = e->valuedouble;
    *refresh = cJSON_IsString(r) ? strdup(r->valuestring) : NULL;
    rc = *access ? 0 : -1;
    if (rc) wipe_free(*refresh), *refresh = NULL;
  }
  if (cJSON_IsString(a)) wipe_str(a->valuestring);
  if (cJSON_IsString(r)) wipe_str(r->valuestring);
  cJSON_Delete(j);
  return rc;
}

/* ksctl's cache: {"accessToken","expiresAt" (ms since the epoch),"refreshToken"}. Like ksctl (client.ts readCache),
 * only a regular file of this user that no one else may read or write is a login: a symlink, another user's file or
 * group/other bits mean it may have been planted (another identity's token) or read. */
int ks_read_ksctl_cache(const char *path, char **access, double *expires_ms, char **refresh) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
    close(fd);
    return -1;
  }
  FILE *f = fdopen(fd, "r");
  if (!f) {
    close(fd);
    return -1;
  }
  char *buf = calloc(1, 262145);
  size_t n = buf ? fread(buf, 1, 262144, f) : 0;
  fclose(f);
  if (!buf) return -1;
  int rc = ks_parse_ksctl_cache(buf, n, access, expires_ms, refresh);
  explicit_bzero(buf, n);
  free(buf);
  return rc;
}

/* Writes ksctl's cache back (0600, replaced atomically) so ksctl and the module share one login. An empty access token
 * with expiresAt 0 is a login whose access token the Keyserver refused: ksctl and the module refresh it (client.ts
 * readCache). */
static void write_cache(const char *path, const struct grant *g, const char *old_refresh, time_t now) {
  cJSON *j = cJSON_CreateObject();
  if (!j) return;
  int dropped = !g->access_token || !g->access_token[0];
  cJSON_AddStringToObject(j, "accessToken", dropped ? "" : g->access_token);
  cJSON_AddNumberToObject(j, "expiresAt", dropped ? 0 : ((double)now + (double)g->expires_in) * 1000.0);
  const char *rt = g->refresh_token ? g->refresh_token : old_refresh;
  if (rt) cJSON_AddStringToObject(j, "refreshToken", rt);
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!text) return;
  char tmp[4300];
  if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) {
    wipe_free(text);
    return;
  }
  /* A fresh file only (O_EXCL): never into a file or link someone left under that name. */
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    ok = fsync(fd) == 0 && ok;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
      unlink(tmp);
      ks_log(KS_LOG_WARN, "could not update ksctl's token cache");
    }
  }
  wipe_free(text);
}

static CK_RV fetch_token(const struct ks_config *c, struct grant *g, time_t now) {
  if (!c->client_id || !c->scope) {
    ks_log(KS_LOG_ERROR, "set KEYSERVER_CLIENT_ID and KEYSERVER_SCOPE (api://<APPLICATION_ID>/.default)");
    return CKR_USER_NOT_LOGGED_IN;
  }
  switch (c->auth) {
    case KS_AUTH_SECRET: {
      if (!c->client_secret) {
        ks_log(KS_LOG_ERROR, "no credentials: set KEYSERVER_CLIENT_SECRET, or KEYSERVER_CLIENT_CERTIFICATE, "
                             "or KEYSERVER_AUTH=wif|pkce, or KEYSERVER_TOKEN");
        return CKR_USER_NOT_LOGGED_IN;
      }
      const char *p[] = {"grant_type", "client_credentials", "client_id", c->client_id, "client_secret", c->client_secret,
                         "scope", c->scope, NULL};
      return token_request(c, p, g);
    }
    case KS_AUTH_CERTIFICATE: {
      if (!c->client_certificate || !c->token_endpoint) {
        ks_log(KS_LOG_ERROR, "certificate credentials need KEYSERVER_CLIENT_CERTIFICATE and KEYSERVER_TOKEN_ENDPOINT");
        return CKR_USER_NOT_LOGGED_IN;
      }
      char err[200] = "";
      char *assertion = ks_certificate_assertion(c->client_certificate, c->client_private_key, c->client_key_passphrase,
                                                 c->client_id, c->token_endpoint, now, err, sizeof err);
      if (!assertion) {
        ks_log(KS_LOG_ERROR, "certificate credential: %s", err);
        return CKR_USER_NOT_LOGGED_IN;
      }
      const char *p[] = {"grant_type", "client_credentials", "client_id", c->client_id, "client_assertion_type",
                         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", assertion, "scope",
                         c->scope, NULL};
      CK_RV rv = token_request(c, p, g);
      wipe_free(assertion);
      return rv;
    }
    case KS_AUTH_WIF: {
      char *assertion = NULL;
      CK_RV rv = federated_assertion(c, &assertion);
      if (rv != CKR_OK) return rv;
      const char *p[] = {"grant_type", "client_credentials", "client_id", c->client_id, "client_assertion_type",
                         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", assertion, "scope",
                         c->scope, NULL};
      rv = token_request(c, p, g);
      wipe_free(assertion);
      return rv;
    }
    case KS_AUTH_PKCE: {
      char path[4200];
      char *access = NULL, *refresh = NULL;
      double expires_ms = 0;
      if (ks_ksctl_cache_file(c, path, sizeof path) || ks_read_ksctl_cache(path, &access, &expires_ms, &refresh)) {
        ks_log(KS_LOG_ERROR, "not logged in: run `ksctl --pkce login` with the same token endpoint, client id and scope");
        return CKR_USER_NOT_LOGGED_IN;
      }
      long left = (long)(expires_ms / 1000.0 - (double)now);
      /* Refreshed instead: a token that cannot be sent is no login, and ksctl caches a token for a day at most (an expiry
       * further ahead was not written by ksctl or by this module). A token the Keyserver refused is no longer in the file
       * (ks_auth_refused): one found there after a 401 is another process's renewal. */
      if (left > 60 && left <= KS_MAX_TOKEN_LIFETIME + 60 && ks_token_usable(access)) {
        g->access_token = access;
        g->expires_in = left;
        wipe_free(refresh);
        return CKR_OK;
      }
      wipe_free(access);
      if (!refresh) {
        ks_log(KS_LOG_ERROR, "ksctl's cached login expired and holds no refresh token: run `ksctl --pkce login` again");
        return CKR_USER_NOT_LOGGED_IN;
      }
      const char *p[] = {"grant_type", "refresh_token", "client_id", c->client_id, "refresh_token", refresh, "scope", c->scope, NULL};
      CK_RV rv = token_request(c, p, g);
      if (rv == CKR_OK) write_cache(path, g, refresh, now);
      wipe_free(refresh);
      return rv;
    }
    case KS_AUTH_TOKEN:
      break;
  }
  return CKR_GENERAL_ERROR;
}

void ks_auth_refused(struct ks_auth *a, const struct ks_config *c, const char *token) {
  if (c->auth == KS_AUTH_TOKEN || !token) return;
  pthread_mutex_lock(&a->lock);
  if (a->access_token && !strcmp(a->access_token, token)) {
    wipe_free(a->access_token);
    a->access_token = NULL;
    a->expires_at = a->obtained_at = 0;
  }
  if (c->auth == KS_AUTH_PKCE) {
    /* ksctl's login: the refused access token leaves the file, its refresh token stays (the login survives); only when
     * the file still holds that token (ksctl or another process may have renewed it since). */
    char path[4200];
    char *access = NULL, *refresh = NULL;
    double expires_ms = 0;
    if (!ks_ksctl_cache_file(c, path, sizeof path) && !ks_read_ksctl_cache(path, &access, &expires_ms, &refresh) &&
        !strcmp(access, token)) {
      struct grant none = {0};
      if (refresh) write_cache(path, &none, refresh, 0);
      else if (unlink(path) != 0) ks_log(KS_LOG_WARN, "could not remove the refused token from ksctl's cache");
      ks_log(KS_LOG_INFO, "the Keyserver refused ksctl's cached token: dropped from its cache");
    }
    wipe_free(access);
    wipe_free(refresh);
  }
  pthread_mutex_unlock(&a->lock);
}

CK_RV ks_auth_token(struct ks_auth *a, const struct ks_config *c, int force, char **token_out) {
  *token_out = NULL;
  if (c->auth == KS_AUTH_TOKEN) {
    if (!ks_token_usable(c->token)) {
      ks_log(KS_LOG_ERROR, "KEYSERVER_TOKEN is empty, or no RFC 6750 bearer token (letters, digits, -._~+/ and a trailing =; at most 8192)");
      return CKR_USER_NOT_LOGGED_IN;
    }
    if (force) {
      ks_log(KS_LOG_ERROR, "the Keyserver refused KEYSERVER_TOKEN (expired?) and a ready token cannot be renewed");
      return CKR_USER_NOT_LOGGED_IN;
    }
    *token_out = strdup(c->token);
    return *token_out ? CKR_OK : CKR_HOST_MEMORY;
  }
  pthread_mutex_lock(&a->lock);
  time_t now = time(NULL);
  CK_RV rv = CKR_OK;
  long lifetime = (long)(a->expires_at - a->obtained_at);
  if (force || !a->access_token || now >= a->expires_at - ks_refresh_margin(lifetime)) {
    struct grant g = {0};
    rv = fetch_token(c, &g, now);
    if (rv == CKR_OK) {
      wipe_free(a->access_token);
      a->access_token = g.access_token;
      g.access_token = NULL;
      a->obtained_at = now;
      a->expires_at = now + g.expires_in;
      a->refreshes++;
      ks_log(KS_LOG_INFO, "token obtained (%s, valid for %ld s, renewed %ld s before it expires)", ks_auth_name(c->auth),
             g.expires_in, ks_refresh_margin(g.expires_in));
    } else if (!force && a->access_token && now < a->expires_at - 5) {
      /* The renewal failed but the current token still works: keep signing, try again next time. */
      ks_log(KS_LOG_WARN, "token renewal failed (%s); using the current token for its last %ld s", ks_rv_name(rv),
             (long)(a->expires_at - now));
      rv = CKR_OK;
    }
    grant_free(&g);
  }
  if (rv == CKR_OK && !(*token_out = strdup(a->access_token))) rv = CKR_HOST_MEMORY;
  pthread_mutex_unlock(&a->lock);
  return rv;
}
