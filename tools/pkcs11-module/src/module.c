/* The PKCS#11 interface: one slot, one token, for every firmware key the caller may use a private key
 * (CKA_SIGN, never extractable), its public key and its certificate. C_Sign becomes a Keyserver sign order.
 *
 * Locking: g_lock guards the session table and login state, g_keys_lock the one-time key list load, the
 * token cache has its own lock. No lock is held during a sign order, so sessions sign in parallel. Calls that use the
 * key list, the configuration or the token outside g_lock are counted (enter/leave): C_Finalize waits for them. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ks.h"

#define SLOT_ID 0
#define MAX_SESSIONS 1024
#define MAX_RAW_INPUT 1024

/* One sign or verify operation of a session. */
struct op {
  int active;
  int multipart;
  size_t key;
  struct ks_mech_plan plan;
  EVP_MD_CTX *md;
  unsigned char raw[MAX_RAW_INPUT];
  size_t rawlen;
  /* CKM_EDDSA in parts: the message gathered by C_SignUpdate (at most KS_MAX_MESSAGE bytes, on the heap). */
  unsigned char *msg;
  size_t msglen;
};

struct session {
  CK_SESSION_HANDLE handle;
  CK_FLAGS flags;
  int closing;
  int busy;
  /* C_FindObjects */
  int find_active;
  CK_OBJECT_HANDLE *found;
  size_t nfound, pos;
  /* C_Sign, and C_Verify (local, verify.c) on its own: a session may verify while it signs */
  struct op signing, verifying;
};

#ifndef CKR_OPERATION_CANCEL_FAILED
#define CKR_OPERATION_CANCEL_FAILED 0x202UL /* PKCS#11 3.0 */
#endif

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_keys_lock = PTHREAD_MUTEX_INITIALIZER;
/* Written under g_lock by C_Initialize and C_Finalize, read by every function without it: atomically. */
static int g_initialized;
#define INITIALIZED() __atomic_load_n(&g_initialized, __ATOMIC_ACQUIRE)
/* Calls that use the key list, the configuration or the token outside g_lock (a sign order, a verification, an
 * attribute read) are counted; C_Finalize lets no new one in and waits for them before it frees what they use. */
static int g_calls, g_finalizing;
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER;
static int g_logged_in;
static struct ks_config g_cfg;
static struct ks_auth g_auth;
static struct ks_keylist g_keys;
static int g_keys_loaded;
static struct session *g_sessions[MAX_SESSIONS];
static CK_SESSION_HANDLE g_next_handle = 1;

static const CK_BBOOL T = CK_TRUE, F = CK_FALSE;

static int enter(void) {
  pthread_mutex_lock(&g_lock);
  int ok = g_initialized && !g_finalizing;
  if (ok) g_calls++;
  pthread_mutex_unlock(&g_lock);
  return ok;
}

static void leave(void) {
  pthread_mutex_lock(&g_lock);
  if (--g_calls == 0) pthread_cond_broadcast(&g_idle);
  pthread_mutex_unlock(&g_lock);
}

/* The body of a C_ function that uses global state outside g_lock, between enter() and leave(). */
#define GUARDED(call)                                           \
  do {                                                          \
    if (!enter()) return CKR_CRYPTOKI_NOT_INITIALIZED;          \
    CK_RV rv_ = (call);                                         \
    leave();                                                    \
    return rv_;                                                 \
  } while (0)

static void pad(unsigned char *dst, size_t n, const char *src) {
  memset(dst, ' ', n);
  size_t l = strlen(src);
  memcpy(dst, src, l < n ? l : n);
}

static const char *getenv_real(const char *n) { return getenv(n); }

/* ---- general ---- */

CK_RV C_Initialize(CK_VOID_PTR pInitArgs) {
  if (pInitArgs) {
    CK_C_INITIALIZE_ARGS *a = pInitArgs;
    if (a->pReserved) return CKR_ARGUMENTS_BAD;
    int given = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) + (a->LockMutex != NULL) + (a->UnlockMutex != NULL);
    if (given != 0 && given != 4) return CKR_ARGUMENTS_BAD;
    /* Only the operating system's locks (pthreads) are used. */
    if (given == 4 && !(a->flags & CKF_OS_LOCKING_OK)) return CKR_CANT_LOCK;
    /* libcurl's resolver runs in a thread of its own. */
    if (a->flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS) return CKR_NEED_TO_CREATE_THREADS;
  }
  pthread_mutex_lock(&g_lock);
  if (g_initialized) {
    pthread_mutex_unlock(&g_lock);
    return CKR_CRYPTOKI_ALREADY_INITIALIZED;
  }
  ks_log_open(getenv("KEYSERVER_PKCS11_LOG"), getenv("KEYSERVER_PKCS11_LOG_FILE"));
  ks_http_global_init(); /* before the configuration: its URL checks use libcurl's parser */
  char err[400];
  if (ks_config_load(&g_cfg, getenv_real, err, sizeof err)) {
    ks_log(KS_LOG_ERROR, "configuration: %s", err);
    ks_config_free(&g_cfg);
    pthread_mutex_unlock(&g_lock);
    return CKR_FUNCTION_FAILED;
  }
  ks_log_open(g_cfg.log_level, g_cfg.log_file);
  ks_auth_init(&g_auth);
  g_keys_loaded = 0;
  g_logged_in = 0;
  __atomic_store_n(&g_initialized, 1, __ATOMIC_RELEASE);
  ks_log(KS_LOG_INFO, "initialized: Keyserver %s, login %s", g_cfg.api_url, ks_auth_name(g_cfg.auth));
  pthread_mutex_unlock(&g_lock);
  return CKR_OK;
}

static void end_op(struct op *o) {
  EVP_MD_CTX_free(o->md);
  o->md = NULL;
  o->active = 0;
  o->multipart = 0;
  o->rawlen = 0;
  free(o->msg);
  o->msg = NULL;
  o->msglen = 0;
}

static void session_free(struct session *s) {
  if (!s) return;
  end_op(&s->verifying);
  end_op(&s->signing);
  free(s->found);
  memset(s, 0, sizeof *s);
  free(s);
}

CK_RV C_Finalize(CK_VOID_PTR pReserved) {
  if (pReserved) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  if (!g_initialized || g_finalizing) {
    pthread_mutex_unlock(&g_lock);
    return CKR_CRYPTOKI_NOT_INITIALIZED;
  }
  /* A sign order or verification of another thread still uses the keys, the configuration and the token: no new one
   * starts, and those under way end (each within its HTTP timeouts) before anything is freed. */
  g_finalizing = 1;
  while (g_calls) pthread_cond_wait(&g_idle, &g_lock);
  for (int i = 0; i < MAX_SESSIONS; i++) {
    if (g_sessions[i] && !g_sessions[i]->busy) session_free(g_sessions[i]);
    else if (g_sessions[i]) g_sessions[i]->closing = 1;
    g_sessions[i] = NULL;
  }
  pthread_mutex_lock(&g_keys_lock);
  ks_keys_free(&g_keys);
  g_keys_loaded = 0;
  pthread_mutex_unlock(&g_keys_lock);
  ks_auth_free(&g_auth);
  ks_config_free(&g_cfg);
  __atomic_store_n(&g_initialized, 0, __ATOMIC_RELEASE);
  g_finalizing = 0;
  ks_log_close();
  pthread_mutex_unlock(&g_lock);
  return CKR_OK;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pInfo) return CKR_ARGUMENTS_BAD;
  memset(pInfo, 0, sizeof *pInfo);
  pInfo->cryptokiVersion.major = 2;
  pInfo->cryptokiVersion.minor = 40;
  pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "Keyserver");
  pad(pInfo->libraryDescription, sizeof pInfo->libraryDescription, "Keyserver PKCS#11 module");
  pInfo->libraryVersion.major = 1;
  pInfo->libraryVersion.minor = 0;
  return CKR_OK;
}

/* ---- slot and token ---- */

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
  (void)tokenPresent;
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pulCount) return CKR_ARGUMENTS_BAD;
  if (pSlotList) {
    if (*pulCount < 1) {
      *pulCount = 1;
      return CKR_BUFFER_TOO_SMALL;
    }
    pSlotList[0] = SLOT_ID;
  }
  *pulCount = 1;
  return CKR_OK;
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slotID != SLOT_ID) return CKR_SLOT_ID_INVALID;
  if (!pInfo) return CKR_ARGUMENTS_BAD;
  memset(pInfo, 0, sizeof *pInfo);
  pad(pInfo->slotDescription, sizeof pInfo->slotDescription, "Keyserver");
  pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "Keyserver");
  pInfo->flags = CKF_TOKEN_PRESENT;
  pInfo->hardwareVersion.major = 1;
  pInfo->firmwareVersion.major = 1;
  return CKR_OK;
}

static CK_RV get_token_info(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slotID != SLOT_ID) return CKR_SLOT_ID_INVALID;
  if (!pInfo) return CKR_ARGUMENTS_BAD;
  memset(pInfo, 0, sizeof *pInfo);
  pad(pInfo->label, sizeof pInfo->label, g_cfg.token_label);
  pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "Keyserver");
  pad(pInfo->model, sizeof pInfo->model, "REST signer");
  /* The serial tells Keyservers apart: the start of SHA-256 over the API URL. */
  unsigned char sha[32];
  EVP_Digest(g_cfg.api_url, strlen(g_cfg.api_url), sha, NULL, EVP_sha256(), NULL);
  char *hex = ks_hex(sha, 8);
  pad(pInfo->serialNumber, sizeof pInfo->serialNumber, hex ? hex : "");
  free(hex);
  /* No CKF_LOGIN_REQUIRED: the credentials are OAuth client credentials from the configuration, not a PIN. */
  pInfo->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
  pInfo->ulMaxSessionCount = MAX_SESSIONS;
  pInfo->ulMaxRwSessionCount = MAX_SESSIONS;
  pInfo->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulMaxPinLen = 256;
  pInfo->ulMinPinLen = 0;
  pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  pInfo->hardwareVersion.major = 1;
  pInfo->firmwareVersion.major = 1;
  return CKR_OK;
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
  GUARDED(get_token_info(slotID, pInfo));
}

static CK_RV get_mechanism_list(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slotID != SLOT_ID) return CKR_SLOT_ID_INVALID;
  if (!pulCount) return CKR_ARGUMENTS_BAD;
  /* CKM_EDDSA (the last one) only when Ed25519 keys are listed. */
  size_t count = ks_mechanisms_count - (g_cfg.eddsa ? 0 : 1);
  if (pMechanismList) {
    if (*pulCount < count) {
      *pulCount = count;
      return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(pMechanismList, ks_mechanisms, count * sizeof ks_mechanisms[0]);
  }
  *pulCount = count;
  return CKR_OK;
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) {
  GUARDED(get_mechanism_list(slotID, pMechanismList, pulCount));
}

static CK_RV get_mechanism_info(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slotID != SLOT_ID) return CKR_SLOT_ID_INVALID;
  if (!pInfo) return CKR_ARGUMENTS_BAD;
  size_t i = 0;
  while (i < ks_mechanisms_count && ks_mechanisms[i] != type) i++;
  if (i == ks_mechanisms_count) return CKR_MECHANISM_INVALID;
  if (type == CKM_EDDSA) {
    if (!g_cfg.eddsa) return CKR_MECHANISM_INVALID;
    /* Ed25519 keys only (CKA_ALLOWED_MECHANISMS and C_SignInit hold each key to its own mechanisms). */
    pInfo->ulMinKeySize = pInfo->ulMaxKeySize = 255;
    pInfo->flags = CKF_HW | CKF_SIGN;
    return CKR_OK;
  }
  int ec = type == CKM_ECDSA || type == CKM_ECDSA_SHA256 || type == CKM_ECDSA_SHA384 || type == CKM_ECDSA_SHA512;
  pInfo->ulMinKeySize = ec ? 256 : 2048;
  pInfo->ulMaxKeySize = ec ? 521 : 4096;
  /* CKF_VERIFY: verified locally with the certificate's public key (verify.c). */
  pInfo->flags = CKF_HW | CKF_SIGN | CKF_VERIFY | (ec ? (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS) : 0);
  return CKR_OK;
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
  GUARDED(get_mechanism_info(slotID, type, pInfo));
}

/* ---- sessions ---- */

static struct session *find_session(CK_SESSION_HANDLE h) {
  for (int i = 0; i < MAX_SESSIONS; i++)
    if (g_sessions[i] && g_sessions[i]->handle == h) return g_sessions[i];
  return NULL;
}

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) {
  (void)pApplication;
  (void)Notify;
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slotID != SLOT_ID) return CKR_SLOT_ID_INVALID;
  if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
  if (!phSession) return CKR_ARGUMENTS_BAD;
  struct session *s = calloc(1, sizeof *s);
  if (!s) return CKR_HOST_MEMORY;
  pthread_mutex_lock(&g_lock);
  int i = 0;
  while (i < MAX_SESSIONS && g_sessions[i]) i++;
  if (i == MAX_SESSIONS) {
    pthread_mutex_unlock(&g_lock);
    free(s);
    return CKR_SESSION_COUNT;
  }
  s->handle = g_next_handle++;
  s->flags = flags;
  g_sessions[i] = s;
  *phSession = s->handle;
  pthread_mutex_unlock(&g_lock);
  return CKR_OK;
}

/* Removes a session from the table; a session in the middle of a sign order is freed by that call. */
static void drop(int i) {
  struct session *s = g_sessions[i];
  g_sessions[i] = NULL;
  if (s->busy) s->closing = 1;
  else session_free(s);
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  pthread_mutex_lock(&g_lock);
  CK_RV rv = CKR_SESSION_HANDLE_INVALID;
  int open = 0;
  for (int i = 0; i < MAX_SESSIONS; i++) {
    if (g_sessions[i] && g_sessions[i]->handle == hSession) {
      drop(i);
      rv = CKR_OK;
    }
    open += g_sessions[i] != NULL;
  }
  if (!open) g_logged_in = 0; /* login state ends with the last session */
  pthread_mutex_unlock(&g_lock);
  return rv;
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (slotID != SLOT_ID) return CKR_SLOT_ID_INVALID;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < MAX_SESSIONS; i++)
    if (g_sessions[i]) drop(i);
  g_logged_in = 0;
  pthread_mutex_unlock(&g_lock);
  return CKR_OK;
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pInfo) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(hSession);
  if (s) {
    int rw = (s->flags & CKF_RW_SESSION) != 0;
    pInfo->slotID = SLOT_ID;
    pInfo->flags = s->flags;
    pInfo->ulDeviceError = 0;
    pInfo->state = g_logged_in ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS) : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
  }
  pthread_mutex_unlock(&g_lock);
  return s ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
}

/* The token needs no login (see C_GetTokenInfo); a login is accepted so that tools which always log in work.
 * The PIN is ignored and never logged. */
CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
  (void)pPin;
  (void)ulPinLen;
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  pthread_mutex_lock(&g_lock);
  CK_RV rv = CKR_OK;
  struct session *s = find_session(hSession);
  if (!s) rv = CKR_SESSION_HANDLE_INVALID;
  /* A context-specific login belongs to an operation and logs nobody in (no key needs one: no CKA_ALWAYS_AUTHENTICATE). */
  else if (userType == CKU_CONTEXT_SPECIFIC) rv = s->signing.active || s->verifying.active ? CKR_OK : CKR_OPERATION_NOT_INITIALIZED;
  else if (userType != CKU_USER) rv = CKR_USER_TYPE_INVALID;
  else if (g_logged_in) rv = CKR_USER_ALREADY_LOGGED_IN;
  else g_logged_in = 1;
  pthread_mutex_unlock(&g_lock);
  return rv;
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  pthread_mutex_lock(&g_lock);
  CK_RV rv = !find_session(hSession) ? CKR_SESSION_HANDLE_INVALID : !g_logged_in ? CKR_USER_NOT_LOGGED_IN : CKR_OK;
  if (rv == CKR_OK) g_logged_in = 0;
  pthread_mutex_unlock(&g_lock);
  return rv;
}

/* ---- objects ---- */

/* Loads the key list once per C_Initialize (handles stay stable for the life of the process). */
static CK_RV ensure_keys(void) {
  pthread_mutex_lock(&g_keys_lock);
  CK_RV rv = CKR_OK;
  if (!g_keys_loaded) {
    struct ks_keylist l = {0};
    rv = ks_fetch_keys(&g_cfg, &g_auth, &l);
    if (rv == CKR_OK) {
      g_keys = l;
      g_keys_loaded = 1;
    }
  }
  pthread_mutex_unlock(&g_keys_lock);
  return rv;
}

/* Handle layout: key i has its private key at 3i+1, public key at 3i+2, certificate at 3i+3. */
static const struct ks_key *object_of(CK_OBJECT_HANDLE h, CK_OBJECT_CLASS *cls) {
  if (h == 0) return NULL;
  pthread_mutex_lock(&g_keys_lock);
  const struct ks_key *k = NULL;
  size_t i = (size_t)((h - 1) / 3);
  if (g_keys_loaded && i < g_keys.n) {
    k = &g_keys.keys[i];
    unsigned long r = (unsigned long)((h - 1) % 3);
    *cls = r == 0 ? CKO_PRIVATE_KEY : r == 1 ? CKO_PUBLIC_KEY : CKO_CERTIFICATE;
  }
  pthread_mutex_unlock(&g_keys_lock);
  return k;
}

enum { ATTR_OK, ATTR_INVALID, ATTR_SENSITIVE };

/* The value of one attribute of an object, as a pointer into the key or a small scratch buffer. */
static int attribute(const struct ks_key *k, CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE type, const void **p, size_t *len,
                     unsigned char *scratch) {
#define BYTES(ptr, n) \
  do {                \
    *p = (ptr);       \
    *len = (n);       \
    return ATTR_OK;   \
  } while (0)
#define ULONG(v)                               \
  do {                                         \
    CK_ULONG v_ = (v);                         \
    memcpy(scratch, &v_, sizeof v_);           \
    BYTES(scratch, sizeof(CK_ULONG));          \
  } while (0)
#define BOOL(v) BYTES((v) ? &T : &F, sizeof(CK_BBOOL))
  int priv = cls == CKO_PRIVATE_KEY, pub = cls == CKO_PUBLIC_KEY, cert = cls == CKO_CERTIFICATE;
  CK_KEY_TYPE kt = k->type == KS_KEY_RSA ? CKK_RSA : k->type == KS_KEY_EC ? CKK_EC : CKK_EC_EDWARDS;
  switch (type) {
    case CKA_CLASS: ULONG(cls);
    case CKA_TOKEN: BOOL(1);
    case CKA_PRIVATE: BOOL(0);
    case CKA_MODIFIABLE: BOOL(0);
    case CKA_COPYABLE: BOOL(0);
    case CKA_DESTROYABLE: BOOL(0);
    case CKA_LABEL: BYTES(k->keyid, strlen(k->keyid));
    case CKA_ID: BYTES(k->keyid, strlen(k->keyid));
    case CKA_SUBJECT: BYTES(k->subject, k->subject_len);
    case CKA_PUBLIC_KEY_INFO: BYTES(k->spki, k->spki_len);
    default: break;
  }
  if (cert) {
    switch (type) {
      case CKA_CERTIFICATE_TYPE: ULONG(CKC_X_509);
      case CKA_CERTIFICATE_CATEGORY: ULONG(1); /* token user */
      case CKA_TRUSTED: BOOL(0);
      case CKA_VALUE: BYTES(k->cert_der, k->cert_der_len);
      case CKA_ISSUER: BYTES(k->issuer, k->issuer_len);
      case CKA_SERIAL_NUMBER: BYTES(k->serial, k->serial_len);
      default: return ATTR_INVALID;
    }
  }
  switch (type) {
    case CKA_KEY_TYPE: ULONG(kt);
    case CKA_LOCAL: BOOL(0);
    case CKA_DERIVE: BOOL(0);
    case CKA_ALLOWED_MECHANISMS: {
      CK_MECHANISM_TYPE m[8];
      size_t n = priv ? ks_mech_allowed(k, m, 8) : 0;
      memcpy(scratch, m, n * sizeof m[0]);
      BYTES(scratch, n * sizeof m[0]);
    }
    case CKA_MODULUS:
      if (k->type == KS_KEY_RSA) BYTES(k->modulus, k->modulus_len);
      return ATTR_INVALID;
    case CKA_PUBLIC_EXPONENT:
      if (k->type == KS_KEY_RSA) BYTES(k->exponent, k->exponent_len);
      return ATTR_INVALID;
    case CKA_MODULUS_BITS:
      if (k->type == KS_KEY_RSA) ULONG(k->bits);
      return ATTR_INVALID;
    case CKA_EC_PARAMS:
      if (k->type != KS_KEY_RSA) BYTES(k->ec_params, k->ec_params_len);
      return ATTR_INVALID;
    case CKA_EC_POINT:
      if (k->type != KS_KEY_RSA) BYTES(k->ec_point, k->ec_point_len);
      return ATTR_INVALID;
    default: break;
  }
  if (pub) {
    switch (type) {
      case CKA_VERIFY: BOOL(k->type != KS_KEY_ED25519); /* C_Verify checks RSA and ECDSA (verify.c) */
      case CKA_ENCRYPT: case CKA_WRAP: case CKA_VERIFY_RECOVER: case CKA_TRUSTED: BOOL(0);
      default: return ATTR_INVALID;
    }
  }
  switch (type) {
    case CKA_SIGN: BOOL(1);
    case CKA_SENSITIVE: case CKA_ALWAYS_SENSITIVE: case CKA_NEVER_EXTRACTABLE: BOOL(1);
    case CKA_EXTRACTABLE: case CKA_DECRYPT: case CKA_UNWRAP: case CKA_SIGN_RECOVER: case CKA_ALWAYS_AUTHENTICATE:
    case CKA_WRAP_WITH_TRUSTED: BOOL(0);
    case CKA_VALUE: case CKA_PRIVATE_EXPONENT: case CKA_PRIME_1: case CKA_PRIME_2: case CKA_EXPONENT_1: case CKA_EXPONENT_2:
    case CKA_COEFFICIENT: return ATTR_SENSITIVE;
    default: return ATTR_INVALID;
  }
#undef BYTES
#undef ULONG
#undef BOOL
}

static CK_RV get_attribute_value(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pTemplate && ulCount) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  int ok = find_session(hSession) != NULL;
  pthread_mutex_unlock(&g_lock);
  if (!ok) return CKR_SESSION_HANDLE_INVALID;
  CK_OBJECT_CLASS cls;
  const struct ks_key *k = object_of(hObject, &cls);
  if (!k) return CKR_OBJECT_HANDLE_INVALID;
  CK_RV rv = CKR_OK;
  for (CK_ULONG i = 0; i < ulCount; i++) {
    unsigned char scratch[64];
    const void *p;
    size_t len;
    int r = attribute(k, cls, pTemplate[i].type, &p, &len, scratch);
    if (r != ATTR_OK) {
      pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = r == ATTR_SENSITIVE ? CKR_ATTRIBUTE_SENSITIVE : CKR_ATTRIBUTE_TYPE_INVALID;
      continue;
    }
    if (pTemplate[i].pValue) {
      if (pTemplate[i].ulValueLen < len) {
        pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
        rv = CKR_BUFFER_TOO_SMALL;
        continue;
      }
      memcpy(pTemplate[i].pValue, p, len);
    }
    pTemplate[i].ulValueLen = len;
  }
  return rv;
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  GUARDED(get_attribute_value(hSession, hObject, pTemplate, ulCount));
}

static int matches(const struct ks_key *k, CK_OBJECT_CLASS cls, const CK_ATTRIBUTE *t, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; i++) {
    unsigned char scratch[64];
    const void *p;
    size_t len;
    if (attribute(k, cls, t[i].type, &p, &len, scratch) != ATTR_OK) return 0;
    if (t[i].ulValueLen != len || (len && (!t[i].pValue || memcmp(t[i].pValue, p, len)))) return 0;
  }
  return 1;
}

static CK_RV find_objects_init(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!pTemplate && ulCount) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(hSession);
  CK_RV rv = !s ? CKR_SESSION_HANDLE_INVALID : s->find_active ? CKR_OPERATION_ACTIVE : CKR_OK;
  pthread_mutex_unlock(&g_lock);
  if (rv != CKR_OK) return rv;
  if ((rv = ensure_keys()) != CKR_OK) return rv;
  CK_OBJECT_HANDLE *found = calloc(3 * g_keys.n + 1, sizeof *found);
  if (!found) return CKR_HOST_MEMORY;
  size_t n = 0;
  for (CK_OBJECT_HANDLE h = 1; h <= 3 * g_keys.n; h++) {
    CK_OBJECT_CLASS cls;
    const struct ks_key *k = object_of(h, &cls);
    if (k && matches(k, cls, pTemplate, ulCount)) found[n++] = h;
  }
  pthread_mutex_lock(&g_lock);
  s = find_session(hSession);
  if (!s) rv = CKR_SESSION_HANDLE_INVALID;
  else if (s->find_active) rv = CKR_OPERATION_ACTIVE;
  else {
    s->found = found;
    s->nfound = n;
    s->pos = 0;
    s->find_active = 1;
    found = NULL;
  }
  pthread_mutex_unlock(&g_lock);
  free(found);
  return rv;
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  GUARDED(find_objects_init(hSession, pTemplate, ulCount));
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!phObject || !pulObjectCount) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(hSession);
  CK_RV rv = !s ? CKR_SESSION_HANDLE_INVALID : !s->find_active ? CKR_OPERATION_NOT_INITIALIZED : CKR_OK;
  if (rv == CKR_OK) {
    CK_ULONG n = 0;
    while (n < ulMaxObjectCount && s->pos < s->nfound) phObject[n++] = s->found[s->pos++];
    *pulObjectCount = n;
  }
  pthread_mutex_unlock(&g_lock);
  return rv;
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(hSession);
  CK_RV rv = !s ? CKR_SESSION_HANDLE_INVALID : !s->find_active ? CKR_OPERATION_NOT_INITIALIZED : CKR_OK;
  if (rv == CKR_OK) {
    free(s->found);
    s->found = NULL;
    s->find_active = 0;
  }
  pthread_mutex_unlock(&g_lock);
  return rv;
}

static CK_RV get_object_size(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  pthread_mutex_lock(&g_lock);
  int open = find_session(hSession) != NULL;
  pthread_mutex_unlock(&g_lock);
  if (!open) return CKR_SESSION_HANDLE_INVALID;
  CK_OBJECT_CLASS cls;
  if (!object_of(hObject, &cls)) return CKR_OBJECT_HANDLE_INVALID;
  if (!pulSize) return CKR_ARGUMENTS_BAD;
  *pulSize = CK_UNAVAILABLE_INFORMATION;
  return CKR_OK;
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) {
  GUARDED(get_object_size(hSession, hObject, pulSize));
}

/* ---- signing and verifying ---- */

static const EVP_MD *evp_of(enum ks_hash h) { return h == KS_SHA384 ? EVP_sha384() : h == KS_SHA512 ? EVP_sha512() : EVP_sha256(); }

/* The sign and the verify state machines share their steps; is_sign picks the session's operation. A session in the
 * middle of a sign order (busy) takes no other sign step; verifying is not held up by it. */
static struct op *op_of(struct session *s, int is_sign) { return is_sign ? &s->signing : &s->verifying; }

/* Under g_lock: why C_SignInit or C_VerifyInit may not start the operation, or CKR_OK. */
static CK_RV startable(struct session *s, int is_sign) {
  if (!s) return CKR_SESSION_HANDLE_INVALID;
  return op_of(s, is_sign)->active || (is_sign && s->busy) ? CKR_OPERATION_ACTIVE : CKR_OK;
}

/* Locks g_lock and finds the session with its operation started; otherwise unlocks and says why in *rv. */
static struct session *lock_started(CK_SESSION_HANDLE h, int is_sign, CK_RV *rv) {
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(h);
  *rv = !s                          ? CKR_SESSION_HANDLE_INVALID
        : !op_of(s, is_sign)->active ? CKR_OPERATION_NOT_INITIALIZED
        : is_sign && s->busy         ? CKR_OPERATION_ACTIVE
                                     : CKR_OK;
  if (*rv == CKR_OK) return s;
  pthread_mutex_unlock(&g_lock);
  return NULL;
}

/* C_SignInit and C_VerifyInit with a NULL mechanism (PKCS#11 3.0): the session's active operation ends, so a caller that
 * gives up on a signature can use the session again; a sign order under way cannot be called back. Without an active
 * operation a NULL mechanism stays CKR_ARGUMENTS_BAD (PKCS#11 2.40). */
static CK_RV cancel_op(CK_SESSION_HANDLE h, int is_sign) {
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(h);
  CK_RV rv = !s                          ? CKR_SESSION_HANDLE_INVALID
             : is_sign && s->busy        ? CKR_OPERATION_CANCEL_FAILED
             : !op_of(s, is_sign)->active ? CKR_ARGUMENTS_BAD
                                          : CKR_OK;
  if (rv == CKR_OK) end_op(op_of(s, is_sign));
  pthread_mutex_unlock(&g_lock);
  return rv;
}

/* C_SignInit and C_VerifyInit first: a session that cannot start fails before the key is looked at. */
static CK_RV init_check(CK_SESSION_HANDLE h, int is_sign, CK_MECHANISM_PTR m) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!m) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&g_lock);
  CK_RV rv = startable(find_session(h), is_sign);
  pthread_mutex_unlock(&g_lock);
  return rv;
}

/* C_SignInit and C_VerifyInit once the key is checked: the mechanism is planned and the digest started without
 * g_lock; the operation starts under it unless another thread started one meanwhile. */
static CK_RV init_op(const char *fn, CK_SESSION_HANDLE h, int is_sign, const struct ks_key *k, CK_OBJECT_HANDLE hKey,
                     CK_MECHANISM_PTR m) {
  struct ks_mech_plan plan;
  char why[300] = "";
  CK_RV rv = ks_mech_plan(k, m, &plan, why, sizeof why);
  if (rv != CKR_OK) {
    ks_log(KS_LOG_ERROR, "%s: %s -> %s", fn, why, ks_rv_name(rv));
    return rv;
  }
  EVP_MD_CTX *md = NULL;
  if (plan.hashes_locally) {
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, evp_of(plan.hash), NULL) != 1) {
      EVP_MD_CTX_free(md);
      return CKR_HOST_MEMORY;
    }
  }
  pthread_mutex_lock(&g_lock);
  struct session *s = find_session(h);
  rv = startable(s, is_sign);
  if (rv == CKR_OK) {
    struct op *o = op_of(s, is_sign);
    o->active = 1;
    o->multipart = 0;
    o->key = (size_t)((hKey - 1) / 3);
    o->plan = plan;
    o->md = md;
    o->rawlen = 0;
    md = NULL;
  }
  pthread_mutex_unlock(&g_lock);
  EVP_MD_CTX_free(md);
  return rv;
}

/* C_SignUpdate and C_VerifyUpdate: one more part into the digest (the session's own context, under g_lock), or
 * gathered: raw input up to MAX_RAW_INPUT, a CKM_EDDSA message up to the Keyserver's cap. A failure ends the operation. */
static CK_RV update_op(CK_SESSION_HANDLE h, int is_sign, const unsigned char *part, size_t len) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  if (!part && len) return CKR_ARGUMENTS_BAD;
  CK_RV rv;
  struct session *s = lock_started(h, is_sign, &rv);
  if (!s) return rv;
  struct op *o = op_of(s, is_sign);
  o->multipart = 1;
  if (o->md) {
    if (EVP_DigestUpdate(o->md, part, len) != 1) rv = CKR_FUNCTION_FAILED;
  } else if (o->plan.message) {
    /* PureEdDSA (signing only: C_VerifyInit refuses Ed25519 keys) needs the whole message. */
    unsigned char *grown = NULL;
    if (len > KS_MAX_MESSAGE - o->msglen) {
      ks_log(KS_LOG_ERROR, "C_SignUpdate: CKM_EDDSA signs messages of at most %d bytes -> CKR_DATA_LEN_RANGE", KS_MAX_MESSAGE);
      rv = CKR_DATA_LEN_RANGE;
    } else if (len && !(grown = realloc(o->msg, o->msglen + len))) {
      rv = CKR_HOST_MEMORY;
    } else if (len) {
      memcpy(grown + o->msglen, part, len);
      o->msg = grown;
      o->msglen += len;
    }
  } else if (len > MAX_RAW_INPUT - o->rawlen) { /* not rawlen + len: a part length near 2^64 would wrap past the bound */
    rv = CKR_DATA_LEN_RANGE;
  } else {
    memcpy(o->raw + o->rawlen, part, len);
    o->rawlen += len;
  }
  if (rv != CKR_OK) end_op(o);
  pthread_mutex_unlock(&g_lock);
  return rv;
}

/* ---- signing ---- */

static CK_RV sign_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  if (!pMechanism) return cancel_op(hSession, 1);
  CK_RV rv = init_check(hSession, 1, pMechanism);
  if (rv != CKR_OK) return rv;
  CK_OBJECT_CLASS cls;
  const struct ks_key *k = object_of(hKey, &cls);
  if (!k || cls == CKO_CERTIFICATE) return CKR_KEY_HANDLE_INVALID;
  /* A public key is a key, but it does not sign (as C_VerifyInit refuses a private key). */
  if (cls != CKO_PRIVATE_KEY) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  return init_op("C_SignInit", hSession, 1, k, hKey, pMechanism);
}

CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  GUARDED(sign_init(hSession, pMechanism, hKey));
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return update_op(hSession, 1, pPart, ulPartLen);
}

/* After the sign order: the session is free again, or freed if it was closed meanwhile. */
static void release(struct session *s) {
  pthread_mutex_lock(&g_lock);
  s->busy = 0;
  if (s->closing) session_free(s);
  pthread_mutex_unlock(&g_lock);
}

/* C_Sign (data given) and C_SignFinal (data NULL: what C_SignUpdate gathered). */
static CK_RV sign(CK_SESSION_HANDLE hSession, const unsigned char *data, size_t len, int final, CK_BYTE_PTR pSignature,
                  CK_ULONG_PTR pulSignatureLen) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  CK_RV rv;
  struct session *s = lock_started(hSession, 1, &rv);
  if (!s) return rv;
  struct op *o = &s->signing;
  if (!pulSignatureLen || (!final && !data && len)) {
    end_op(o);
    pthread_mutex_unlock(&g_lock);
    return CKR_ARGUMENTS_BAD;
  }
  const struct ks_key *k = &g_keys.keys[o->key];
  size_t need = k->sig_len;
  /* A length query or a short buffer keeps the operation going and asks nothing of the Keyserver. */
  if (!pSignature || *pulSignatureLen < need) {
    rv = pSignature ? CKR_BUFFER_TOO_SMALL : CKR_OK;
    *pulSignatureLen = need;
    pthread_mutex_unlock(&g_lock);
    return rv;
  }
  if (!final && o->multipart) {
    end_op(o);
    pthread_mutex_unlock(&g_lock);
    return CKR_OPERATION_ACTIVE;
  }
  /* From here on the operation ends whatever happens; the session is ours until the sign order returns. */
  s->busy = 1;
  struct ks_mech_plan plan = o->plan;
  EVP_MD_CTX *md = o->md;
  o->md = NULL;
  unsigned char raw[MAX_RAW_INPUT];
  size_t rawlen = o->rawlen;
  memcpy(raw, o->raw, rawlen);
  unsigned char *gathered = o->msg; /* CKM_EDDSA parts: ours now */
  size_t gatheredlen = o->msglen;
  o->msg = NULL;
  o->msglen = 0;
  end_op(o);
  pthread_mutex_unlock(&g_lock);

  unsigned char digest[EVP_MAX_MD_SIZE], input[256];
  const unsigned char *msg = final ? raw : data;
  size_t msglen = final ? rawlen : len;
  unsigned int dl = 0;
  size_t inlen = 0;
  char why[300] = "";
  if (plan.message) {
    /* CKM_EDDSA: the message itself is the sign order's input (no local hashing, no 256-byte input bound). */
    const unsigned char *m = final ? gathered : data;
    size_t mlen = final ? gatheredlen : len;
    rv = ks_mech_message(k, mlen, why, sizeof why);
    if (rv != CKR_OK) ks_log(KS_LOG_ERROR, "%s: %s -> %s", final ? "C_SignFinal" : "C_Sign", why, ks_rv_name(rv));
    else rv = ks_sign_order(&g_cfg, &g_auth, k, &plan, m, mlen, pSignature, need);
    if (rv == CKR_OK) *pulSignatureLen = need;
    free(gathered);
    EVP_MD_CTX_free(md);
    release(s);
    return rv;
  }
  free(gathered);
  if (md) {
    int ok = (final || EVP_DigestUpdate(md, data, len) == 1) && EVP_DigestFinal_ex(md, digest, &dl) == 1;
    msg = digest;
    msglen = dl;
    if (!ok) rv = CKR_FUNCTION_FAILED;
  }
  if (rv == CKR_OK && msglen > sizeof input) {
    snprintf(why, sizeof why, "%s input of %zu bytes is too long", ks_mech_name(plan.mech), msglen);
    rv = CKR_DATA_LEN_RANGE;
  }
  if (rv == CKR_OK) rv = ks_mech_input(k, &plan, msg, msglen, input, &inlen, why, sizeof why);
  if (rv != CKR_OK && why[0]) ks_log(KS_LOG_ERROR, "%s: %s -> %s", final ? "C_SignFinal" : "C_Sign", why, ks_rv_name(rv));
  if (rv == CKR_OK) rv = ks_sign_order(&g_cfg, &g_auth, k, &plan, input, inlen, pSignature, need);
  if (rv == CKR_OK) *pulSignatureLen = need;
  EVP_MD_CTX_free(md);
  release(s);
  return rv;
}

CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  GUARDED(sign(hSession, pData, ulDataLen, 0, pSignature, pulSignatureLen));
}

CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  GUARDED(sign(hSession, NULL, 0, 1, pSignature, pulSignatureLen));
}

/* ---- verifying (local: the public key of the key's certificate, no sign order) ---- */

static CK_RV verify_init(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  if (!pMechanism) return cancel_op(hSession, 0);
  CK_RV rv = init_check(hSession, 0, pMechanism);
  if (rv != CKR_OK) return rv;
  CK_OBJECT_CLASS cls;
  const struct ks_key *k = object_of(hKey, &cls);
  if (!k || cls == CKO_CERTIFICATE) return CKR_KEY_HANDLE_INVALID;
  /* The public key verifies (CKA_VERIFY); a private key object has no CKA_VERIFY, Ed25519 keys say false. */
  if (cls != CKO_PUBLIC_KEY || k->type == KS_KEY_ED25519) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  return init_op("C_VerifyInit", hSession, 0, k, hKey, pMechanism);
}

CK_RV C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  GUARDED(verify_init(hSession, pMechanism, hKey));
}

CK_RV C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return update_op(hSession, 0, pPart, ulPartLen);
}

/* C_Verify (data given) and C_VerifyFinal (data NULL: what C_VerifyUpdate gathered); either ends the operation. */
static CK_RV verify(CK_SESSION_HANDLE hSession, const unsigned char *data, size_t len, int final, const unsigned char *sig,
                    size_t siglen) {
  if (!INITIALIZED()) return CKR_CRYPTOKI_NOT_INITIALIZED;
  CK_RV rv;
  struct session *s = lock_started(hSession, 0, &rv);
  if (!s) return rv;
  struct op *o = &s->verifying;
  if (!sig || (!final && !data && len)) rv = CKR_ARGUMENTS_BAD;
  else if (!final && o->multipart) rv = CKR_OPERATION_ACTIVE; /* C_Verify does not end a multi-part verification */
  const struct ks_key *k = &g_keys.keys[o->key];
  struct ks_mech_plan plan = o->plan;
  unsigned char msg[EVP_MAX_MD_SIZE > MAX_RAW_INPUT ? EVP_MAX_MD_SIZE : MAX_RAW_INPUT], input[256];
  size_t msglen = 0, inlen = 0;
  char why[300] = "";
  if (rv == CKR_OK && o->md) {
    unsigned int dl = 0;
    if ((!final && EVP_DigestUpdate(o->md, data, len) != 1) || EVP_DigestFinal_ex(o->md, msg, &dl) != 1) rv = CKR_FUNCTION_FAILED;
    msglen = dl;
  } else if (rv == CKR_OK && final) {
    memcpy(msg, o->raw, o->rawlen);
    msglen = o->rawlen;
  } else if (rv == CKR_OK && len > sizeof msg) {
    snprintf(why, sizeof why, "%s input of %zu bytes is too long", ks_mech_name(plan.mech), len);
    rv = CKR_DATA_LEN_RANGE;
  } else if (rv == CKR_OK) {
    memcpy(msg, data, len);
    msglen = len;
  }
  end_op(o);
  pthread_mutex_unlock(&g_lock);
  if (rv == CKR_OK && msglen > sizeof input) {
    snprintf(why, sizeof why, "%s input of %zu bytes is too long", ks_mech_name(plan.mech), msglen);
    rv = CKR_DATA_LEN_RANGE;
  }
  if (rv == CKR_OK) rv = ks_mech_input(k, &plan, msg, msglen, input, &inlen, why, sizeof why);
  if (rv != CKR_OK && why[0]) ks_log(KS_LOG_ERROR, "%s: %s -> %s", final ? "C_VerifyFinal" : "C_Verify", why, ks_rv_name(rv));
  if (rv == CKR_OK) rv = ks_verify(k, &plan, input, inlen, sig, siglen);
  return rv;
}

CK_RV C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) {
  GUARDED(verify(hSession, pData, ulDataLen, 0, pSignature, ulSignatureLen));
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) {
  GUARDED(verify(hSession, NULL, 0, 1, pSignature, ulSignatureLen));
}

/* ---- everything a signing token does not do ---- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#define NOT_SUPPORTED(name, args) \
  CK_RV name args { return INITIALIZED() ? CKR_FUNCTION_NOT_SUPPORTED : CKR_CRYPTOKI_NOT_INITIALIZED; }
NOT_SUPPORTED(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved))
NOT_SUPPORTED(C_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d))
NOT_SUPPORTED(C_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c))
NOT_SUPPORTED(C_SetPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d, CK_ULONG e))
NOT_SUPPORTED(C_GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
NOT_SUPPORTED(C_SetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE d, CK_OBJECT_HANDLE e))
NOT_SUPPORTED(C_CreateObject, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE_PTR d))
NOT_SUPPORTED(C_CopyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e))
NOT_SUPPORTED(C_DestroyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b))
NOT_SUPPORTED(C_SetAttributeValue, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d))
NOT_SUPPORTED(C_EncryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
NOT_SUPPORTED(C_Encrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_EncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_EncryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
NOT_SUPPORTED(C_DecryptInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
NOT_SUPPORTED(C_Decrypt, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_DecryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_DecryptFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
NOT_SUPPORTED(C_DigestInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b))
NOT_SUPPORTED(C_Digest, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_DigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
NOT_SUPPORTED(C_DigestKey, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b))
NOT_SUPPORTED(C_DigestFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c))
NOT_SUPPORTED(C_SignRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
NOT_SUPPORTED(C_SignRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_VerifyRecoverInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c))
NOT_SUPPORTED(C_VerifyRecover, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_DigestEncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_DecryptDigestUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_SignEncryptUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e))
NOT_SUPPORTED(C_GenerateKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_OBJECT_HANDLE_PTR e))
NOT_SUPPORTED(C_GenerateKeyPair, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d, CK_ATTRIBUTE_PTR e,
                                  CK_ULONG f, CK_OBJECT_HANDLE_PTR g, CK_OBJECT_HANDLE_PTR h))
NOT_SUPPORTED(C_WrapKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_OBJECT_HANDLE d, CK_BYTE_PTR e, CK_ULONG_PTR f))
NOT_SUPPORTED(C_UnwrapKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_BYTE_PTR d, CK_ULONG e, CK_ATTRIBUTE_PTR f,
                            CK_ULONG g, CK_OBJECT_HANDLE_PTR h))
NOT_SUPPORTED(C_DeriveKey, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_ATTRIBUTE_PTR d, CK_ULONG e, CK_OBJECT_HANDLE_PTR f))
NOT_SUPPORTED(C_SeedRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
NOT_SUPPORTED(C_GenerateRandom, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c))
#pragma GCC diagnostic pop

CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE hSession) {
  (void)hSession;
  return INITIALIZED() ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}
CK_RV C_CancelFunction(CK_SESSION_HANDLE hSession) {
  (void)hSession;
  return INITIALIZED() ? CKR_FUNCTION_NOT_PARALLEL : CKR_CRYPTOKI_NOT_INITIALIZED;
}

static CK_FUNCTION_LIST g_functions = {
    {2, 40},
    C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo,
    C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession,
    C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout, C_CreateObject,
    C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit,
    C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal, C_DecryptInit,
    C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey, C_DigestFinal,
    C_SignInit, C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify,
    C_VerifyUpdate, C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate,
    C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,
    C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent,
};

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
  if (!ppFunctionList) return CKR_ARGUMENTS_BAD;
  *ppFunctionList = &g_functions;
  return CKR_OK;
}
