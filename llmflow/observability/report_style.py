"""The report page's stylesheet (inlined in every report: the page loads nothing)."""

from __future__ import annotations

STYLE = """
:root {
  --ok: #1f8a3b; --fail: #c62828; --skip: #8a8a8a; --cancel: #6d6d6d; --run: #1e6fd9; --wait: #c98a00;
  --pending: #c9c9c9; --ink: #1d1d1f; --muted: #666; --line: #e2e2e6; --panel: #f7f7f9; --back: #fff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: var(--back);
}
@media (prefers-color-scheme: dark) {
  :root { --ink: #e6e6e6; --muted: #a0a0a0; --line: #3a3a40; --panel: #22232a; --back: #16171c; }
}
body { margin: 0 auto; max-width: 1200px; padding: 1.5em; line-height: 1.4; }
h1 { font-size: 1.5em; margin: 0 0 .5em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .6em; border-bottom: 1px solid var(--line); padding-bottom: .2em; }
code, pre { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: .86em; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; max-height: 28em; overflow: auto;
  background: var(--panel); padding: .4em .6em; border-radius: 4px; }
a { color: inherit; }
.note { color: var(--muted); font-style: italic; }
.error { color: var(--fail); }
.badge { font-size: .6em; vertical-align: middle; padding: .15em .6em; border-radius: 1em; color: #fff;
  background: var(--pending); }
.facts { border-collapse: collapse; width: 100%; }
.facts th { text-align: left; vertical-align: top; color: var(--muted); font-weight: 500; padding: .2em 1em .2em 0;
  white-space: nowrap; width: 10em; }
.facts td { padding: .2em 0; vertical-align: top; }
.st-succeeded { --st: var(--ok); } .st-failed { --st: var(--fail); } .st-skipped { --st: var(--skip); }
.st-cancelled { --st: var(--cancel); } .st-running { --st: var(--run); } .st-waiting { --st: var(--wait); }
.st-pending, .st-unknown { --st: var(--pending); }
.badge { background: var(--st); }
.icon { color: var(--st); font-weight: 700; }
.legend { display: flex; gap: 1em; flex-wrap: wrap; font-size: .85em; color: var(--muted); margin-bottom: .6em; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px; background: var(--st);
  margin-right: .3em; vertical-align: -.1em; }
/* graph: a sequence is a vertical list with arrows; a pattern is a box holding its sections */
.graph { overflow-x: auto; padding-bottom: .5em; }
.flow { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; align-items: flex-start; }
.flow > .arrow { color: var(--muted); margin: .05em 0 .05em 1em; line-height: 1.1; }
.node > .node-head { display: inline-block; border: 2px solid var(--st); border-left-width: 6px;
  border-radius: 5px; padding: .25em .6em; background: var(--panel); white-space: nowrap; }
.node.pattern { border: 1px dashed var(--st); border-radius: 7px; padding: .4em .6em .6em; }
.node.pattern > .node-head { border-width: 0 0 0 6px; margin-bottom: .4em; }
.kind, .tally, .cond, .meta { color: var(--muted); font-size: .85em; margin-left: .4em; }
.sections.row { display: flex; gap: .8em; align-items: flex-start; }
.section { border-left: 2px solid var(--line); padding-left: .6em; margin-top: .2em; }
.section-label { font-size: .8em; color: var(--muted); text-transform: uppercase; letter-spacing: .05em;
  margin-bottom: .2em; }
/* Gantt: one row per instance, bars placed by percentage of the run */
.gantt { font-size: .85em; }
.gantt-row { display: grid; grid-template-columns: minmax(10em, 18em) 1fr 5em; align-items: center;
  min-height: 1.5em; border-bottom: 1px solid var(--line); }
.gantt-label { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding-right: .5em; }
.gantt-time { text-align: right; color: var(--muted); }
.track { position: relative; height: 1.1em; }
.bar { position: absolute; top: .15em; bottom: .15em; background: var(--st); border-radius: 2px; min-width: 2px; }
.bar.group { opacity: .35; }
.axis .track { height: 1.3em; border-bottom: 1px solid var(--muted); }
.tick { position: absolute; bottom: .1em; transform: translateX(-50%); color: var(--muted); font-size: .85em; }
.tick:first-child { transform: none; } .tick:last-child { transform: translateX(-100%); }
/* steps */
details.step { border-left: 4px solid var(--st); background: var(--panel); margin: .3em 0; border-radius: 3px; }
details.step.group { background: transparent; }
details.step > summary { cursor: pointer; padding: .3em .6em; }
details.step > .facts { margin: 0 .6em .6em; width: calc(100% - 1.2em); }
.events { border-collapse: collapse; font-size: .85em; }
.events td, .events th { border-bottom: 1px solid var(--line); padding: .1em .6em .1em 0; text-align: left;
  vertical-align: top; }
footer { margin-top: 2em; color: var(--muted); font-size: .8em; }
"""
