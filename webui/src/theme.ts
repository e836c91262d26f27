// Light/dark theme: follows prefers-color-scheme unless the user picked one.

import { h } from './dom';

type Choice = 'auto' | 'light' | 'dark';
const KEY = 'flamestream.theme';
const listeners = new Set<() => void>();
const media = window.matchMedia('(prefers-color-scheme: dark)');

function choice(): Choice {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : 'auto';
  } catch {
    return 'auto';
  }
}

function apply(): void {
  const c = choice();
  if (c === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = c;
  listeners.forEach((l) => l());
}

/** initTheme applies the saved choice and follows system changes. */
export function initTheme(): void {
  apply();
  media.addEventListener('change', () => { if (choice() === 'auto') apply(); });
}

/** isDark reports whether the dark palette is in effect. */
export function isDark(): boolean {
  const c = choice();
  return c === 'dark' || (c === 'auto' && media.matches);
}

/** onThemeChange registers a listener and returns its removal. */
export function onThemeChange(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

/** themeToggle is the header button cycling auto → light → dark. */
export function themeToggle(): HTMLButtonElement {
  const label = () => ({ auto: '◐ Auto', light: '☀ Light', dark: '☾ Dark' }[choice()]);
  const b = h('button', { type: 'button', class: 'btn small ghost', title: 'Theme (auto follows the system)', dataset: { action: 'theme' } }, label());
  b.addEventListener('click', () => {
    const next: Choice = { auto: 'light', light: 'dark', dark: 'auto' }[choice()] as Choice;
    try { localStorage.setItem(KEY, next); } catch { /* private mode */ }
    b.textContent = label();
    apply();
  });
  return b;
}
