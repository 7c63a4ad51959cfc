import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";

/** Rows drawn beyond each edge of the visible ones, so that scrolling shows no gap. */
const overscan = 8;

/**
 * A scrolling list of `count` rows of `rowHeight` pixels where only the rows in
 * view (and a few around them) are in the DOM, however long the list.
 * `onNearEnd` is called while the view is within a screen of the end, to load more.
 */
export function VirtualList({
  label,
  count,
  rowHeight,
  renderRow,
  onNearEnd,
  footer,
  resetKey,
}: {
  readonly label: string;
  readonly count: number;
  readonly rowHeight: number;
  readonly renderRow: (index: number) => ComponentChildren;
  readonly onNearEnd?: () => void;
  /** Shown after the last row: loading, the end, or an error. */
  readonly footer?: ComponentChildren;
  /** Back to the top when it changes (new filters). */
  readonly resetKey?: string;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewHeight, setViewHeight] = useState(600);
  useLayoutEffect(() => {
    const element = scroller.current;
    if (!element) return;
    const observer = new ResizeObserver(() => setViewHeight(element.clientHeight));
    observer.observe(element);
    return () => observer.disconnect();
  }, []);
  useLayoutEffect(() => {
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
  }, [resetKey]);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewHeight) / rowHeight) + overscan);
  const nearEnd = scrollTop + 2 * viewHeight >= count * rowHeight;
  useEffect(() => {
    if (nearEnd) onNearEnd?.();
  }, [nearEnd, count]);
  const rows: ComponentChildren[] = [];
  for (let index = first; index < last; index++) {
    rows.push(
      <li
        key={index}
        class="virtual-row"
        style={{ transform: `translateY(${index * rowHeight}px)`, height: `${rowHeight}px` }}
      >
        {renderRow(index)}
      </li>,
    );
  }
  return (
    <div
      ref={scroller}
      class="virtual-list"
      onScroll={(event) => setScrollTop((event.currentTarget as HTMLDivElement).scrollTop)}
    >
      <ul aria-label={label} class="virtual-body" style={{ height: `${count * rowHeight}px` }}>
        {rows}
      </ul>
      <div class="virtual-footer">{footer}</div>
    </div>
  );
}
