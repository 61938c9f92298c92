/**
 * The thin rendering layer: a Vega-Lite spec compiled to Vega, drawn headless to an SVG string,
 * and the SVG rasterised to PNG by resvg with the system fonts (vega measures text with the same
 * family named in the spec's config), plus the folders in HILO_FONT_DIRS (colon-separated), for
 * machines with no fonts installed (scripts/device-compare.sh carries DejaVu Sans there).
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** PNG at `scale` x the SVG's size (2 = crisp on high-density screens and in READMEs). */
export function svgToPng(svg: string, scale = 2): Buffer {
  const fontDirs = (process.env.HILO_FONT_DIRS ?? '').split(':').filter(Boolean);
  const png = new Resvg(svg, { font: { loadSystemFonts: true, fontDirs }, fitTo: { mode: 'zoom', value: scale }, background: 'white' });
  return png.render().asPng();
}
