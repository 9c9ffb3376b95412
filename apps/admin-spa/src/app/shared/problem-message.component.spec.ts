import { TestBed } from '@angular/core/testing';
import { PROBLEM_MESSAGES } from '../core/problem-messages';
import { ProblemMessageComponent } from './problem-message.component';

describe(ProblemMessageComponent.name, () => {
  async function render(problem: unknown) {
    const fixture = TestBed.createComponent(ProblemMessageComponent);
    fixture.componentRef.setInput('problem', problem);
    await fixture.whenStable();
    return fixture.nativeElement as HTMLElement;
  }

  it('renders the plain words for the code, the detail, the code and the request id as an alert', async () => {
    const el = await render({ type: 't', title: 'Forbidden', status: 403, code: 'admin_session_required', detail: 'header missing', requestId: 'req-42' });
    const alert = el.querySelector('[role="alert"]');
    expect(alert).not.toBeNull();
    expect(alert?.getAttribute('data-code')).toBe('admin_session_required');
    expect(el.querySelector('.problem-text')?.textContent?.trim()).toBe(PROBLEM_MESSAGES['admin_session_required']);
    expect(el.textContent).toContain('header missing');
    expect(el.textContent).toContain('req-42');
  });

  it('shows the title when the code is not in the table', async () => {
    const el = await render({ type: 't', title: 'Unusual failure', status: 500, code: 'something_else' });
    expect(el.querySelector('.problem-text')?.textContent?.trim()).toBe('Unusual failure');
  });

  it('renders nothing without a problem', async () => {
    const el = await render(null);
    expect(el.querySelector('[role="alert"]')).toBeNull();
  });
});
