/*
 * keyserver-pkcs11: a PKCS#11 module whose keys live in a Keyserver.
 * Internal interfaces shared by the module's source files (not installed).
 */
#ifndef KS_H
#define KS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

/* ---- logging (log.c): level from KEYSERVER_PKCS11_LOG, never secrets ---- */
enum ks_level { KS_LOG_NONE = 0, KS_LOG_ERROR, KS_LOG_WARN, KS_LOG_INFO, KS_LOG_DEBUG };
void ks_log_open(const char *level, const char *file);
void ks_log_close(void);
void ks_log(enum ks_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copies `in` (at most `max` bytes used) into `out` with every byte outside printable ASCII as '?'. */
void ks_sanitize(char *out, size_t outsz, const char *in, size_t max);
const char *ks_rv_name(CK_RV rv);

/* ---- configuration (config.c): a KEY=VALUE file, then the environment ---- */
enum ks_auth_method { KS_AUTH_SECRET, KS_AUTH_CERTIFICATE, KS_AUTH_WIF, KS_AUTH_PKCE, KS_AUTH_TOKEN };

struct ks_config {
  char *api_url;
  char *operation_id;
  char *token_endpoint;
  char *scope;
  char *client_id;
  char *client_secret;
  char *client_certificate;
  char *client_private_key;
  char *client_key_passphrase;
  char *token;
  char *federated_token_file;
  char *oidc_request_uri;
  char *system_access_token;
  char *service_connection_id;
  char *cache_dir;
  char *ca_file;
  char *description;
  char *token_label;
  char *log_level;
  char *log_file;
  enum ks_auth_method auth;
  int auth_set;
  int client_id_explicit;
  long timeout_seconds;
  int eddsa; /* KEYSERVER_PKCS11_EDDSA=on: Ed25519 keys are objects and CKM_EDDSA is offered */
};

/* Loads defaults, the file named by KEYSERVER_PKCS11_CONFIG (if set), then the environment.
 * Returns 0, or -1 with a sentence in `err`. `getenv_fn` is getenv except in unit tests. */
int ks_config_load(struct ks_config *c, const char *(*getenv_fn)(const char *), char *err, size_t errsz);
/* Parses one config text (KEY=VALUE lines, '#' comments); unknown keys are an error. */
int ks_config_parse_text(struct ks_config *c, const char *text, size_t len, char *err, size_t errsz);
int ks_config_set(struct ks_config *c, const char *key, const char *value, char *err, size_t errsz);
void ks_config_free(struct ks_config *c);
const char *ks_auth_name(enum ks_auth_method m);

/* ---- HTTP (http.c) ---- */
struct ks_buf {
  char *data;
  size_t len;
};
struct ks_http_result {
  long status;      /* HTTP status, 0 when no answer */
  int transport;    /* 0 ok, else a CURLcode */
  int timed_out;
  int too_large;    /* the answer passed the 4 MiB cap */
  char error[256];  /* transport error sentence */
  struct ks_buf body;
};
void ks_http_global_init(void);
void ks_http_global_cleanup(void);
/* bearer may be NULL; content_type NULL means GET. Bodies above 4 MiB are cut and flagged as an error. */
void ks_http_request(const struct ks_config *c, const char *method, const char *url, const char *bearer,
                     const char *content_type, const char *body, const char *idempotency_key,
                     struct ks_http_result *out);
void ks_http_result_free(struct ks_http_result *r);
char *ks_form_escape(const char *s);

/* ---- tokens (auth.c) ---- */
struct ks_auth {
  pthread_mutex_t lock;
  char *access_token;
  time_t expires_at;
  time_t obtained_at;
  int refreshes;
};
void ks_auth_init(struct ks_auth *a);
void ks_auth_free(struct ks_auth *a);
/* A valid bearer token (malloc'd copy) refreshed before it expires; `force` fetches a new one (after a 401). */
CK_RV ks_auth_token(struct ks_auth *a, const struct ks_config *c, int force, char **token_out);
/* 1 if `t` can be sent as a bearer token: an RFC 6750 b64token of 1 to 8192 characters (no space, no CR LF, no quote). */
int ks_token_usable(const char *t);
/* The longest a token is cached or taken from ksctl's cache, in seconds (ksctl's MAX_TOKEN_LIFETIME_SECONDS). */
#define KS_MAX_TOKEN_LIFETIME 86400
/* The Keyserver answered 401 invalid_token to `token`: it is dropped (the module's copy, and ksctl's cache entry of a
 * PKCE login, whose refresh token stays) when they still hold it, so the next ks_auth_token gets a fresh one. */
void ks_auth_refused(struct ks_auth *a, const struct ks_config *c, const char *token);
/* Seconds before expiry when a token is renewed: a quarter of its lifetime, 30 s to 5 min. */
long ks_refresh_margin(long lifetime_seconds);
/* The ksctl token cache file of (token endpoint, client id, scope). */
int ks_ksctl_cache_file(const struct ks_config *c, char *out, size_t outsz);
/* Reads ksctl's cache file (malloc'd access and refresh token, expiry in ms); 0, or -1 when it is no usable login. */
int ks_read_ksctl_cache(const char *path, char **access, double *expires_ms, char **refresh);
/* Parses ksctl's cache text (the same result as ks_read_ksctl_cache); the tokens' copies in the parse tree are zeroed. */
int ks_parse_ksctl_cache(const char *text, size_t len, char **access, double *expires_ms, char **refresh);
/* Parses a token endpoint's answer: CKR_OK with a malloc'd usable access token (and refresh token, lifetime in seconds),
 * else the CKR_ of the refusal (logged, `method` names the credentials). */
CK_RV ks_token_answer(const char *method, long status, const char *body, size_t len, char **access, char **refresh, long *expires_in);
/* An RFC 7523 private_key_jwt assertion, PS256 with x5t#S256 (what ksctl sends). Returns malloc'd or NULL. */
char *ks_certificate_assertion(const char *cert_file, const char *key_file, const char *passphrase, const char *client_id,
                               const char *audience, time_t now, char *err, size_t errsz);

/* ---- keys (keys.c) ---- */
enum ks_key_type { KS_KEY_RSA, KS_KEY_EC, KS_KEY_ED25519 };
enum ks_hash { KS_SHA256 = 0, KS_SHA384, KS_SHA512 };

struct ks_key {
  char *keyid;
  char *keyinfo;
  enum ks_key_type type;
  enum ks_hash hash;
  unsigned char *cert_der;
  size_t cert_der_len;
  unsigned char *subject;
  size_t subject_len;
  unsigned char *issuer;
  size_t issuer_len;
  unsigned char *serial;
  size_t serial_len;
  unsigned char *spki;
  size_t spki_len;
  /* RSA */
  unsigned char *modulus;
  size_t modulus_len;
  unsigned char *exponent;
  size_t exponent_len;
  /* EC / Ed25519: DER ECParameters (named curve OID or printable string) and DER OCTET STRING point */
  unsigned char *ec_params;
  size_t ec_params_len;
  unsigned char *ec_point;
  size_t ec_point_len;
  size_t sig_len; /* signature length in bytes: modulus length, 2 x field size, or 64 */
  unsigned long bits;
};

struct ks_keylist {
  struct ks_key *keys;
  size_t n;
};
/* Parses the body of GET /api/keys; keys that are not FW keys or do not parse are skipped (logged). */
int ks_keys_parse(const char *json, size_t len, struct ks_keylist *out, char *err, size_t errsz);
/* Removes the Ed25519 keys from a parsed list (KEYSERVER_PKCS11_EDDSA=off); returns how many. */
size_t ks_keys_drop_ed25519(struct ks_keylist *l);
void ks_keys_free(struct ks_keylist *l);
const char *ks_hash_name(enum ks_hash h);
size_t ks_hash_len(enum ks_hash h);

/* ---- mechanisms (mech.c): what a PKCS#11 signature becomes as a sign order ---- */
/* Largest message a CKM_EDDSA signature takes: the Keyserver's cap of a message sign order (ADR 0030). */
#define KS_MAX_MESSAGE (64 * 1024)

struct ks_mech_plan {
  CK_MECHANISM_TYPE mech;
  int hashes_locally;   /* CKM_*_SHA* mechanisms: the module hashes the data itself */
  enum ks_hash hash;    /* the hash that is signed */
  const char *padding;  /* inputpadding of the sign order (NULL for a message order) */
  const char *format;   /* signatureformat of the sign order (NULL for a message order) */
  int message;          /* CKM_EDDSA: the whole message goes to the Keyserver (a message sign order) */
};
/* Checks that `mech` (with its parameters) fits `key`; fills `plan`. CKR_OK or the CKR_ to return from C_SignInit. */
CK_RV ks_mech_plan(const struct ks_key *key, const CK_MECHANISM *mech, struct ks_mech_plan *plan, char *why, size_t whysz);
/* Checks a CKM_EDDSA message (1 to KS_MAX_MESSAGE bytes) before anything is asked of the Keyserver. */
CK_RV ks_mech_message(const struct ks_key *key, size_t len, char *why, size_t whysz);
/* Turns the caller's data (after local hashing) into the sign order's input bytes. */
CK_RV ks_mech_input(const struct ks_key *key, const struct ks_mech_plan *plan, const unsigned char *data, size_t len,
                    unsigned char *out, size_t *outlen, char *why, size_t whysz);
/* The mechanisms a key allows (for CKA_ALLOWED_MECHANISMS); returns how many were written. */
size_t ks_mech_allowed(const struct ks_key *key, CK_MECHANISM_TYPE *out, size_t max);
/* Every mechanism the token knows, for C_GetMechanismList. */
extern const CK_MECHANISM_TYPE ks_mechanisms[];
extern const size_t ks_mechanisms_count;
const char *ks_mech_name(CK_MECHANISM_TYPE m);
/* The DER DigestInfo prefix of a hash; DigestInfo = prefix || digest. */
const unsigned char *ks_digestinfo_prefix(enum ks_hash h, size_t *len);
/* Finds the hash of a DER DigestInfo; -1 when `data` is none of SHA-256/384/512's. */
int ks_digestinfo_hash(const unsigned char *data, size_t len);

/* Maps a Keyserver answer (HTTP status and problem code) to a CKR_. */
CK_RV ks_problem_to_rv(long status, const char *code);

/* ---- the sign order (sign.c) ---- */
/* A digest order (`inputdata`) or, for a message plan, a message order (`message`, base64). */
CK_RV ks_sign_order(const struct ks_config *c, struct ks_auth *a, const struct ks_key *key, const struct ks_mech_plan *plan,
                    const unsigned char *input, size_t inlen, unsigned char *sig, size_t siglen);
/* A sign order's 200/201 answer: the signature (exactly siglen bytes, verified with the key's certificate) into `sig`. */
CK_RV ks_sign_answer(const struct ks_key *key, const struct ks_mech_plan *plan, const unsigned char *input, size_t inlen,
                     const char *body, size_t bodylen, unsigned char *sig, size_t siglen);
/* Logs a refused or failed request (status, problem code, detail, request id) and returns its CKR_. */
CK_RV ks_refusal(const char *what, const struct ks_http_result *r);
/* Fetches GET /api/keys. */
CK_RV ks_fetch_keys(const struct ks_config *c, struct ks_auth *a, struct ks_keylist *out);

/* ---- verification (verify.c): local, with the public key of the key's certificate ---- */
/* Checks `sig` over the sign order input `input` (what ks_mech_input makes, or a CKM_EDDSA message) as the Keyserver
 * would have signed it: CKR_OK, CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE, or CKR_KEY_FUNCTION_NOT_PERMITTED (an
 * Ed25519 key with a plan that is not a message plan). C_Verify uses it, and ks_sign_order on every answer. */
CK_RV ks_verify(const struct ks_key *k, const struct ks_mech_plan *plan, const unsigned char *input, size_t inlen,
                const unsigned char *sig, size_t siglen);

/* hex helpers */
char *ks_hex(const unsigned char *p, size_t n);
int ks_unhex(const char *s, unsigned char *out, size_t outsz, size_t *outlen);

#endif
