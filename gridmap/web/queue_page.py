"""The dispatchers' queue page (``/events``): open cases below a grid, filtered by matter, state and
deadline, sorted by deadline, each with the actions the viewer's role may take.  A static page; its
script (``static/gridmap-queue.js``) reads ``/api/v1/events`` with the token the map page keeps."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from ..domain.events.loop import OPEN, STATES
from .auth import public

bp = Blueprint("queue", __name__)

PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>事件派遣 dispatcher queue · gridmap</title>
<link rel="icon" type="image/svg+xml" href="{favicon}"><link rel="stylesheet" href="{css}">
<script src="{js}" defer></script></head>
<body class="gm-queue-page" data-api="{api}">
<h1>事件派遣 Dispatcher queue <small><a href="{home}">一张图 map</a></small></h1>
<form id="gm-queue-filter">
  <label>网格 grid <input name="grid" placeholder="街道/社区编码 street or community code"></label>
  <label>事项 matter <input name="matter" size="8"></label>
  <label>状态 state <select name="state"><option value="">全部待办 every open state</option>{states}</select></label>
  <label><input type="checkbox" name="overdue" value="true"> 仅超时 overdue only</label>
  <label>排序 sort <select name="sort"><option value="deadline">时限 soonest first</option>
    <option value="-deadline">latest first</option></select></label>
  <button type="submit">查询 show</button>
</form>
<div id="gm-queue-token" class="gm-box" hidden><b>访问令牌 token</b> <small></small>
  <input type="password" autocomplete="off" placeholder="gm_…"> <button type="button">OK</button></div>
<p id="gm-queue-summary"></p>
<table id="gm-queue"><thead><tr><th>#</th><th>事项 matter</th><th>状态 state</th><th>时限 due</th><th>网格 grid</th>
  <th>部门 department</th><th>操作 actions</th></tr></thead><tbody></tbody></table>
<p id="gm-queue-pager"><button type="button" data-page="-1">‹</button> <span></span>
  <button type="button" data-page="1">›</button></p>
</body></html>
"""


@bp.get("/events")
@public  # the page asks for a token itself, like the map
def page():
    """The dispatchers' queue page."""
    states = "".join(f'<option value="{s}">{STATES[s]} {s}</option>' for s in OPEN)
    html = PAGE.format(favicon=url_for("pages.static", filename="favicon.svg"),
                       css=url_for("pages.static", filename="gridmap.css"),
                       js=url_for("pages.static", filename="gridmap-queue.js"),
                       api=url_for("events.queue"), home=url_for("pages.index"), states=states)  # fmt: skip
    return Response(html, mimetype="text/html")
