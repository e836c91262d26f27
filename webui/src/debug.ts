// State exposed on window.__flamestream for browser tests and debugging: tests
// read it instead of guessing pixels.

export interface HoverInfo { name: string; self: number; total: number; pct: number; depth: number; base?: number }

export interface DebugState {
  /** view is the current page: login, services, profile, diff, tokens, install, agents, settings, notfound. */
  view: string;
  /** ready is true once the current page has its data (and, for graphs, has drawn). */
  ready: boolean;
  /** error is the last error message shown on the page ('' when none). */
  error: string;
  /** nodes is the number of nodes in the loaded tree. */
  nodes: number;
  /** nodesDrawn is how many rectangles the last full render drew (merged slivers count once). */
  nodesDrawn: number;
  /** renders counts full renders; overlayRenders counts hover-only redraws. */
  renders: number;
  overlayRenders: number;
  /** lastRenderMs is the duration of the last full render; lastOverlayMs of the last hover redraw. */
  lastRenderMs: number;
  lastOverlayMs: number;
  /** textMs is the label pass of the last full render; labels how many labels it considered. */
  textMs: number;
  labels: number;
  /** resizeMs, layoutMs and fillMs split the last full render (canvas sizing, layout walk, rectangle fills). */
  resizeMs: number;
  layoutMs: number;
  fillMs: number;
  /** loadMs: fetch + JSON parse of the tree (parseMs: the parse alone); flattenMs: tree to typed arrays; firstPaintMs: flatten + first render. */
  loadMs: number;
  parseMs: number;
  flattenMs: number;
  firstPaintMs: number;
  hovered: HoverInfo | null;
  /** searchMatched is the fraction of the root matched by the search or highlighted function. */
  searchMatched: number;
  search: string;
  /** zoomPath lists the frames from the root's child down to the zoomed node ([] when not zoomed). */
  zoomPath: string[];
  focus: string[];
  orientation: 'icicle' | 'flame';
  /** covered is the range the last graph reply covers when the API widened it past the raw retention. */
  covered: [number, number] | null;
  /** graphView is the flame graph's drawing: deep (scrolls inside a viewport), the scroll offset and viewport height, the zoomed content height (CSS px) and the canvas backing store (device px). */
  graphView?: { deep: boolean; top: number; height: number; content: number; canvasW: number; canvasH: number };
  /** Helpers (set by the flame graph while it is shown). */
  locate?: (name: string) => { x: number; y: number; w: number; h: number } | null;
  renderNow?: () => number;
  zoomToIndex?: (i: number) => void;
  hoverAt?: (clientX: number, clientY: number) => void;
  scrollToNode?: (i: number) => boolean;
  [k: string]: unknown;
}

/** debug is the live object behind window.__flamestream. */
export const debug: DebugState = {
  view: '',
  ready: false,
  error: '',
  nodes: 0,
  nodesDrawn: 0,
  renders: 0,
  overlayRenders: 0,
  lastRenderMs: 0,
  lastOverlayMs: 0,
  textMs: 0,
  labels: 0,
  resizeMs: 0,
  layoutMs: 0,
  fillMs: 0,
  loadMs: 0,
  parseMs: 0,
  flattenMs: 0,
  firstPaintMs: 0,
  hovered: null,
  searchMatched: 0,
  search: '',
  zoomPath: [],
  focus: [],
  orientation: 'icicle',
  covered: null,
};

(window as any).__flamestream = debug;

/** resetDebug clears the per-page fields when a new page is shown. */
export function resetDebug(view: string): void {
  Object.assign(debug, {
    view, ready: false, error: '', nodes: 0, nodesDrawn: 0, hovered: null, searchMatched: 0, search: '',
    zoomPath: [], focus: [], covered: null, locate: undefined, renderNow: undefined, zoomToIndex: undefined, hoverAt: undefined, scrollToNode: undefined, graphView: undefined,
  });
}
