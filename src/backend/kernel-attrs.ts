/**
 * The one crossing between a hilo kernel's own attribute record and tfjs's NamedAttrMap. tfjs
 * types attributes as numbers, strings and arrays, but the engine hands them to the kernel
 * untouched, so hilo's kernels carry typed records through them: options, and the held frozen
 * matrices (host buffers the engine must not copy or track). Both directions are casts; naming
 * them here keeps the kernels' code typed on each side.
 */
import type { NamedAttrMap } from '@tensorflow/tfjs';

/** A kernel's attribute record, as runKernel takes it. */
export const toAttrs = <T extends object>(attrs: T): NamedAttrMap => attrs as unknown as NamedAttrMap;

/** The record a kernel was given, read back in its own type. */
export const fromAttrs = <T extends object>(attrs: NamedAttrMap | undefined): T => attrs as unknown as T;
