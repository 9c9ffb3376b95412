import { Injectable } from '@angular/core';

/** Full-page navigations (login, logout) behind a seam so tests can observe them. */
@Injectable({ providedIn: 'root' })
export class BrowserNavigation {
  assign(url: string): void {
    window.location.assign(url);
  }

  currentPath(): string {
    return window.location.pathname + window.location.search;
  }
}
