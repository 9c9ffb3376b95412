import { ApplicationConfig, provideBrowserGlobalErrorListeners, provideZonelessChangeDetection } from '@angular/core';
import { provideHttpClient, withFetch, withInterceptors, withNoXsrfProtection } from '@angular/common/http';
import { provideRouter, withComponentInputBinding } from '@angular/router';
import { appRoutes } from './app.routes';
import { adminSessionInterceptor } from './core/admin-sessions.service';
import { csrfInterceptor } from './core/csrf.interceptor';
import { sessionExpiryInterceptor } from './core/session-expiry.interceptor';

export const appConfig: ApplicationConfig = {
  providers: [
    provideBrowserGlobalErrorListeners(),
    provideZonelessChangeDetection(),
    // The keyclient's CSRF defence is the static header (csrfInterceptor); no cookie is readable by script.
    provideHttpClient(withFetch(), withNoXsrfProtection(), withInterceptors([csrfInterceptor, adminSessionInterceptor, sessionExpiryInterceptor])),
    provideRouter(appRoutes, withComponentInputBinding()),
  ],
};
