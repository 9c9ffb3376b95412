/* Logging: one line per event on stderr (or KEYSERVER_PKCS11_LOG_FILE), level from KEYSERVER_PKCS11_LOG.
 * Callers never pass secrets (tokens, client secrets, assertions, PINs); every line is printable ASCII. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ks.h"

static enum ks_level g_level = KS_LOG_ERROR;
static FILE *g_file;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

void ks_log_open(const char *level, const char *file) {
  pthread_mutex_lock(&g_log_lock);
  g_level = KS_LOG_ERROR;
  if (level) {
    if (!strcasecmp(level, "none")) g_level = KS_LOG_NONE;
    else if (!strcasecmp(level, "error")) g_level = KS_LOG_ERROR;
    else if (!strcasecmp(level, "warn")) g_level = KS_LOG_WARN;
    else if (!strcasecmp(level, "info")) g_level = KS_LOG_INFO;
    else if (!strcasecmp(level, "debug")) g_level = KS_LOG_DEBUG;
  }
  if (g_file && g_file != stderr) fclose(g_file);
  g_file = NULL;
  if (file && *file) g_file = fopen(file, "ae");
  pthread_mutex_unlock(&g_log_lock);
}

void ks_log_close(void) {
  pthread_mutex_lock(&g_log_lock);
  if (g_file && g_file != stderr) fclose(g_file);
  g_file = NULL;
  pthread_mutex_unlock(&g_log_lock);
}

void ks_log(enum ks_level level, const char *fmt, ...) {
  static const char *names[] = {"", "error", "warn", "info", "debug"};
  if (level > g_level || level == KS_LOG_NONE) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* Printable ASCII only: control characters and non-ASCII bytes (a bidi override in a keyid the Keyserver lists)
   * from server answers or file names never reach the log as such. */
  for (char *p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
  pthread_mutex_lock(&g_log_lock);
  FILE *f = g_file ? g_file : stderr;
  fprintf(f, "keyserver-pkcs11: %s: %s\n", names[level], msg);
  fflush(f);
  pthread_mutex_unlock(&g_log_lock);
}

void ks_sanitize(char *out, size_t outsz, const char *in, size_t max) {
  size_t j = 0;
  if (!outsz) return;
  for (size_t i = 0; in && i < max && in[i] && j + 1 < outsz; i++) {
    unsigned char ch = (unsigned char)in[i];
    out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
  }
  out[j] = 0;
}

const char *ks_rv_name(CK_RV rv) {
  switch (rv) {
#define N(x) \
  case x:    \
    return #x;
    N(CKR_OK)
    N(CKR_HOST_MEMORY)
    N(CKR_GENERAL_ERROR)
    N(CKR_FUNCTION_FAILED)
    N(CKR_ARGUMENTS_BAD)
    N(CKR_CANT_LOCK)
    N(CKR_ATTRIBUTE_SENSITIVE)
    N(CKR_ATTRIBUTE_TYPE_INVALID)
    N(CKR_DATA_INVALID)
    N(CKR_DATA_LEN_RANGE)
    N(CKR_DEVICE_ERROR)
    N(CKR_FUNCTION_NOT_SUPPORTED)
    N(CKR_KEY_HANDLE_INVALID)
    N(CKR_KEY_TYPE_INCONSISTENT)
    N(CKR_KEY_FUNCTION_NOT_PERMITTED)
    N(CKR_MECHANISM_INVALID)
    N(CKR_MECHANISM_PARAM_INVALID)
    N(CKR_OBJECT_HANDLE_INVALID)
    N(CKR_OPERATION_ACTIVE)
    N(CKR_OPERATION_NOT_INITIALIZED)
    N(CKR_SESSION_HANDLE_INVALID)
    N(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    N(CKR_SIGNATURE_INVALID)
    N(CKR_SIGNATURE_LEN_RANGE)
    N(CKR_SLOT_ID_INVALID)
    N(CKR_TOKEN_WRITE_PROTECTED)
    N(CKR_USER_NOT_LOGGED_IN)
    N(CKR_USER_ALREADY_LOGGED_IN)
    N(CKR_USER_TYPE_INVALID)
    N(CKR_BUFFER_TOO_SMALL)
    N(CKR_CRYPTOKI_NOT_INITIALIZED)
    N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    N(CKR_FUNCTION_REJECTED)
#undef N
    default:
      return "CKR_(other)";
  }
}
