"""A trace for people: one line per hop, grouped by node, and how it ended."""

from __future__ import annotations

from typing import Any

_MARK = {"dns": "?", "veth": "→", "bridge": "→", "route": "→", "service": "◆", "nat": "◆", "masquerade": "◆",
         "policy": "■", "encap": "⇒", "arrive": "✓", "reply": "←", "stop": "✗"}


def render(r: dict[str, Any]) -> str:
    lines = [f"trace {r['source']} → {r['dest']} ({r['protocol']})"]
    if r.get("resolved"):
        lines[0] += f"  [{r['resolved']['name']} = {r['resolved']['address']}]"
    node: object = object()
    for h in r["hops"]:
        if h["node"] != node:
            node = h["node"]
            lines.append(f"  {node or 'host'}:")
        lines.append(f"    {_MARK.get(h['step'], '·')} {h['step']:<10} {h['summary']}")
        if h["step"] in ("service", "nat", "policy", "stop", "masquerade") and h["detail"].get("rule"):
            lines.append(f"      {'':<10} rule: {h['detail']['rule']}")
        if h["detail"].get("conntrack"):
            lines.append(f"      {'':<10} conntrack: {h['detail']['conntrack']}")
    ep = r.get("endpoint")
    if ep:
        who = f"{ep['namespace']}/{ep['pod']} " if ep.get("pod") else ""
        lines.append(f"  endpoint: {who}{ep['ip']}:{ep['port']}")
    if r.get("answer"):
        lines.append(f"  answer: {r['answer']}")
    st = r.get("stopped")
    if r["ok"]:
        lines.append(f"OK in {r.get('seconds', 0):.3f} s")
    elif st:
        extra = f" (policy {st['policy']})" if st.get("policy") else ""
        lines.append(f"STOPPED at {st['step']}: {st['reason']}{extra}")
        if st.get("rule"):
            lines.append(f"  rule: {st['rule']}")
    else:
        lines.append("FAILED")
    return "\n".join(lines)
