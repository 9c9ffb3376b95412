import { ApplicationConfig, provideBrowserGlobalErrorListeners, provideZonelessChangeDetection } from '@angular/core';
import { type HttpInterceptorFn, provideHttpClient, withFetch, withInterceptors, withNoXsrfProtection } from '@angular/common/http';
import { provideRouter, withComponentInputBinding } from '@angular/router';
import { appRoutes } from './app.routes';
import { adminSessionInterceptor } from './core/admin-sessions.service';
import { csrfInterceptor } from './core/csrf.interceptor';
import { sessionExpiryInterceptor } from './core/session-expiry.interceptor';
import { visibleTextInterceptor } from './core/visible-text.interceptor';

/** Every API call goes through these, in this order; visibleTextInterceptor sees each answer first (ADR 0047). */
export const API_INTERCEPTORS: HttpInterceptorFn[] = [csrfInterceptor, adminSessionInterceptor, sessionExpiryInterceptor, visibleTextInterceptor];

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    provideZonelessChangeDetection(),
    // The keyclient's CSRF defence is the static header (csrfInterceptor); no cookie is readable by script.
    provideHttpClient(withFetch(), withNoXsrfProtection(), withInterceptors(API_INTERCEPTORS)),
    provideRouter(appRoutes, withComponentInputBinding()),
  ],
};
