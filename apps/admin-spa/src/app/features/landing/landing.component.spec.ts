import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { BrowserNavigation } from '../../core/browser-navigation';
import { LandingComponent } from './landing.component';

describe(LandingComponent.name, () => {
  it('offers "Sign in with Microsoft Entra ID" to a signed-out visitor and starts the login', async () => {
    const assign = jest.fn();
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([]), { provide: BrowserNavigation, useValue: { assign, currentPath: () => '/' } }],
    });
    const ctrl = TestBed.inject(HttpTestingController);
    const f = TestBed.createComponent(LandingComponent);
    ctrl.expectOne('/me').flush({ code: 'unauthenticated' }, { status: 401, statusText: 'Unauthorized' });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    const button = [...(f.nativeElement as HTMLElement).querySelectorAll('button')].find((b) => b.textContent?.trim() === 'Sign in with Microsoft Entra ID');
    expect(button).toBeDefined();
    button?.click();
    expect(assign).toHaveBeenCalledWith('/login?returnTo=%2F');
    ctrl.verify();
  });
});
