/* Configuration: defaults, then the KEY=VALUE file named by KEYSERVER_PKCS11_CONFIG, then the environment.
 * The names are ksctl's (KEYSERVER_URL, KEYSERVER_CLIENT_ID, ...) so one pipeline sets both tools. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <curl/curl.h>

#include "ks.h"

#define MAX_CONFIG_BYTES (64 * 1024)
#define MAX_VALUE_BYTES 8192

struct field {
  const char *name;
  size_t offset;
};

#define F(n, m) {n, offsetof(struct ks_config, m)}
static const struct field FIELDS[] = {
    F("KEYSERVER_URL", api_url),
    F("KEYSERVER_OPERATION_ID", operation_id),
    F("KEYSERVER_TOKEN_ENDPOINT", token_endpoint),
    F("KEYSERVER_SCOPE", scope),
    F("KEYSERVER_CLIENT_ID", client_id),
    F("KEYSERVER_CLIENT_SECRET", client_secret),
    F("KEYSERVER_CLIENT_CERTIFICATE", client_certificate),
    F("KEYSERVER_CLIENT_PRIVATE_KEY", client_private_key),
    F("KEYSERVER_CLIENT_KEY_PASSPHRASE", client_key_passphrase),
    F("KEYSERVER_TOKEN", token),
    F("AZURE_FEDERATED_TOKEN_FILE", federated_token_file),
    F("SYSTEM_OIDCREQUESTURI", oidc_request_uri),
    F("SYSTEM_ACCESSTOKEN", system_access_token),
    F("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", service_connection_id),
    F("KSCTL_CACHE_DIR", cache_dir),
    F("KEYSERVER_CA_FILE", ca_file),
    F("KEYSERVER_SIGN_DESCRIPTION", description),
    F("KEYSERVER_PKCS11_TOKEN_LABEL", token_label),
    F("KEYSERVER_PKCS11_LOG", log_level),
    F("KEYSERVER_PKCS11_LOG_FILE", log_file),
};
#undef F
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

/* Names that are not string fields but are still accepted. */
static const char *EXTRA[] = {"KEYSERVER_AUTH", "KEYSERVER_PKCS11_TIMEOUT", "AZURESUBSCRIPTION_CLIENT_ID", "KEYSERVER_PKCS11_EDDSA"};
#define NEXTRA (sizeof EXTRA / sizeof EXTRA[0])

/* Frees a value that may be a secret, zeroed first (explicit_bzero: a memset right before free may be dropped). */
static void wipe_free(char *s) {
  if (!s) return;
  explicit_bzero(s, strlen(s));
  free(s);
}

static char **slot(struct ks_config *c, size_t i) { return (char **)((char *)c + FIELDS[i].offset); }

const char *ks_auth_name(enum ks_auth_method m) {
  switch (m) {
    case KS_AUTH_SECRET: return "secret";
    case KS_AUTH_CERTIFICATE: return "certificate";
    case KS_AUTH_WIF: return "wif";
    case KS_AUTH_PKCE: return "pkce";
    case KS_AUTH_TOKEN: return "token";
  }
  return "?";
}

static int auth_from(const char *v, enum ks_auth_method *m) {
  static const char *names[] = {"secret", "certificate", "wif", "pkce", "token"};
  for (int i = 0; i < 5; i++)
    if (!strcmp(v, names[i])) {
      *m = (enum ks_auth_method)i;
      return 0;
    }
  return -1;
}

/* Sets one value; an explicit empty value clears it. Values are bytes without NUL or line breaks. */
int ks_config_set(struct ks_config *c, const char *key, const char *value, char *err, size_t errsz) {
  char shown[80];
  ks_sanitize(shown, sizeof shown, key, 64);
  if (strlen(value) > MAX_VALUE_BYTES) {
    snprintf(err, errsz, "%s is longer than %d bytes", shown, MAX_VALUE_BYTES);
    return -1;
  }
  for (const char *p = value; *p; p++)
    if (*p == '\r' || *p == '\n') {
      snprintf(err, errsz, "%s holds a line break", shown);
      return -1;
    }
  if (!strcmp(key, "KEYSERVER_AUTH")) {
    if (auth_from(value, &c->auth)) {
      snprintf(err, errsz, "KEYSERVER_AUTH must be secret, certificate, wif, pkce or token");
      return -1;
    }
    c->auth_set = 1;
    return 0;
  }
  if (!strcmp(key, "KEYSERVER_PKCS11_TIMEOUT")) {
    char *end;
    errno = 0;
    long t = strtol(value, &end, 10);
    if (errno || end == value || *end || t < 1 || t > 600) {
      snprintf(err, errsz, "KEYSERVER_PKCS11_TIMEOUT must be whole seconds from 1 to 600");
      return -1;
    }
    c->timeout_seconds = t;
    return 0;
  }
  if (!strcmp(key, "KEYSERVER_PKCS11_EDDSA")) {
    /* Off by default: libp11 0.4.12 (Debian's OpenSSL engine, osslsigncode) fails on every key of a token that
     * lists a CKK_EC_EDWARDS key, so Ed25519 keys and CKM_EDDSA appear only when asked for (ADR 0030). */
    if (strcmp(value, "on") && strcmp(value, "off")) {
      snprintf(err, errsz, "KEYSERVER_PKCS11_EDDSA must be on or off");
      return -1;
    }
    c->eddsa = !strcmp(value, "on");
    return 0;
  }
  const char *name = !strcmp(key, "AZURESUBSCRIPTION_CLIENT_ID") ? "KEYSERVER_CLIENT_ID" : key;
  for (size_t i = 0; i < NFIELDS; i++) {
    if (strcmp(FIELDS[i].name, name)) continue;
    /* KEYSERVER_CLIENT_ID wins over the Azure DevOps variable whatever the order. */
    if (name != key && *slot(c, i) && c->client_id_explicit) return 0;
    wipe_free(*slot(c, i)); /* the environment overriding the file's secret */
    *slot(c, i) = *value ? strdup(value) : NULL;
    if (*value && !*slot(c, i)) {
      snprintf(err, errsz, "out of memory");
      return -1;
    }
    if (name == key && !strcmp(key, "KEYSERVER_CLIENT_ID")) c->client_id_explicit = *value != 0;
    return 0;
  }
  snprintf(err, errsz, "unknown setting %s", shown);
  return -1;
}

int ks_config_parse_text(struct ks_config *c, const char *text, size_t len, char *err, size_t errsz) {
  size_t i = 0;
  int line = 0;
  if (len > MAX_CONFIG_BYTES) {
    snprintf(err, errsz, "the configuration file is larger than %d bytes", MAX_CONFIG_BYTES);
    return -1;
  }
  while (i < len) {
    line++;
    size_t start = i;
    while (i < len && text[i] != '\n') i++;
    size_t end = i;
    if (i < len) i++; /* the newline */
    if (end > start && text[end - 1] == '\r') end--;
    if (memchr(text + start, 0, end - start)) {
      snprintf(err, errsz, "line %d holds a NUL byte", line);
      return -1;
    }
    while (start < end && isspace((unsigned char)text[start])) start++;
    while (end > start && isspace((unsigned char)text[end - 1])) end--;
    if (start == end || text[start] == '#') continue;
    const char *eq = memchr(text + start, '=', end - start);
    if (!eq) {
      snprintf(err, errsz, "line %d is not KEY=VALUE", line);
      return -1;
    }
    size_t klen = (size_t)(eq - (text + start));
    while (klen && isspace((unsigned char)text[start + klen - 1])) klen--;
    size_t vstart = (size_t)(eq - text) + 1;
    while (vstart < end && isspace((unsigned char)text[vstart])) vstart++;
    size_t vlen = end - vstart;
    /* Optional double quotes around the whole value. */
    if (vlen >= 2 && text[vstart] == '"' && text[vstart + vlen - 1] == '"') {
      vstart++;
      vlen -= 2;
    }
    if (klen == 0 || klen > 64 || vlen > MAX_VALUE_BYTES) {
      snprintf(err, errsz, "line %d: bad key or value length", line);
      return -1;
    }
    char key[65], *value = malloc(vlen + 1);
    if (!value) {
      snprintf(err, errsz, "out of memory");
      return -1;
    }
    memcpy(key, text + start, klen);
    key[klen] = 0;
    memcpy(value, text + vstart, vlen);
    value[vlen] = 0;
    char inner[200];
    int rc = ks_config_set(c, key, value, inner, sizeof inner);
    wipe_free(value);
    if (rc) {
      snprintf(err, errsz, "line %d: %s", line, inner);
      return -1;
    }
  }
  return 0;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errsz) {
  FILE *f = fopen(path, "rbe");
  char shown[256];
  ks_sanitize(shown, sizeof shown, path, 200);
  if (!f) {
    snprintf(err, errsz, "cannot read the configuration file %s: %s", shown, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) && st.st_size > 0) {
    /* Client secrets may sit in this file: say so when others can read it. */
    ks_log(KS_LOG_WARN, "the configuration file %s can be read by other users (chmod 600 it)", shown);
  }
  char *buf = malloc(MAX_CONFIG_BYTES + 1);
  if (!buf) {
    fclose(f);
    snprintf(err, errsz, "out of memory");
    return -1;
  }
  size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
  fclose(f);
  *out = buf;
  *len = n;
  return 0;
}

/* https, or plain http to a loopback host: the host libcurl will connect to, read by libcurl's own URL parser (a prefix
 * test let http://127.0.0.1.evil.example and http://localhost:@evil.example through). */
static int loopback_or_https(const char *url) {
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL;
  int ok = 0;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    struct in_addr v4;
    if (!strcasecmp(scheme, "https")) ok = 1;
    else if (!strcasecmp(scheme, "http"))
      ok = !strcasecmp(host, "localhost") || !strcmp(host, "[::1]") ||
           (inet_pton(AF_INET, host, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127);
  }
  curl_free(scheme);
  curl_free(host);
  curl_url_cleanup(u);
  return ok;
}

/* A user name or password in a URL: it would be logged with the URL and sent next to the bearer token. */
static int has_userinfo(const char *url) {
  CURLU *u = curl_url();
  char *user = NULL, *password = NULL;
  int has = 0;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
    has = curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK || curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK;
  }
  curl_free(user);
  curl_free(password);
  curl_url_cleanup(u);
  return has;
}

/* The URLs a bearer token (or SYSTEM_ACCESSTOKEN) goes to: https, or plain http to loopback; no user or password. */
static int url_check(const char *name, const char *url, char *err, size_t errsz) {
  if (!loopback_or_https(url)) {
    snprintf(err, errsz, "%s must be https (plain http only for loopback hosts)", name);
    return -1;
  }
  if (has_userinfo(url)) {
    snprintf(err, errsz, "%s must not hold a user name or password", name);
    return -1;
  }
  return 0;
}

int ks_config_load(struct ks_config *c, const char *(*getenv_fn)(const char *), char *err, size_t errsz) {
  memset(c, 0, sizeof *c);
  c->timeout_seconds = 30;
  const char *file = getenv_fn("KEYSERVER_PKCS11_CONFIG");
  if (file && *file) {
    char *text;
    size_t len;
    if (read_file(file, &text, &len, err, errsz)) return -1;
    char inner[300];
    int rc = ks_config_parse_text(c, text, len, inner, sizeof inner);
    explicit_bzero(text, len); /* the file may hold a client secret */
    free(text);
    if (rc) {
      char shown[200];
      ks_sanitize(shown, sizeof shown, file, 150);
      snprintf(err, errsz, "%s: %s", shown, inner);
      return -1;
    }
  }
  for (size_t i = 0; i < NFIELDS + NEXTRA; i++) {
    const char *name = i < NFIELDS ? FIELDS[i].name : EXTRA[i - NFIELDS];
    const char *v = getenv_fn(name);
    if (!v) continue;
    if (ks_config_set(c, name, v, err, errsz)) return -1;
  }
  if (!c->api_url) {
    snprintf(err, errsz, "KEYSERVER_URL is not set (the Keyserver API, e.g. https://keyserver.example.com)");
    return -1;
  }
  size_t n = strlen(c->api_url);
  while (n > 0 && c->api_url[n - 1] == '/') c->api_url[--n] = 0;
  if (url_check("KEYSERVER_URL", c->api_url, err, errsz)) return -1;
  if (c->token_endpoint && url_check("KEYSERVER_TOKEN_ENDPOINT", c->token_endpoint, err, errsz)) return -1;
  /* SYSTEM_ACCESSTOKEN goes there as a bearer token. */
  if (c->oidc_request_uri && url_check("SYSTEM_OIDCREQUESTURI", c->oidc_request_uri, err, errsz)) return -1;
  if (!c->auth_set) c->auth = c->token ? KS_AUTH_TOKEN : c->client_certificate ? KS_AUTH_CERTIFICATE : KS_AUTH_SECRET;
  if (!c->token_label) c->token_label = strdup("Keyserver");
  return c->token_label ? 0 : -1;
}

void ks_config_free(struct ks_config *c) {
  for (size_t i = 0; i < NFIELDS; i++) {
    char **s = slot(c, i);
    wipe_free(*s); /* secrets do not linger in freed memory */
    *s = NULL;
  }
}
