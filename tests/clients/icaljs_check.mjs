// Parse iCalendar files with ical.js, the parser of Mozilla Thunderbird's calendar, and
// print what Thunderbird would show: per file, every event's UID, start and end (resolved
// through the file's VTIMEZONE for timed events), status and sequence. Usage:
//   node icaljs_check.mjs FILE.ics [FILE.ics ...]   → JSON on stdout; exit 1 on a parse error
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

const out = {};
for (const path of process.argv.slice(2)) {
  const text = readFileSync(path, "utf8");
  const root = new ICAL.Component(ICAL.parse(text));
  for (const tz of root.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(tz);
  }
  const events = [];
  for (const component of root.getAllSubcomponents("vevent")) {
    const event = new ICAL.Event(component);
    const start = event.startDate;
    const end = event.endDate;
    events.push({
      uid: event.uid,
      summary: event.summary,
      all_day: start.isDate,
      start: start.isDate ? start.toString() : start.toJSDate().toISOString(),
      end: end ? (end.isDate ? end.toString() : end.toJSDate().toISOString()) : null,
      status: component.getFirstPropertyValue("status"),
      sequence: event.sequence,
      description: event.description,
    });
  }
  out[path] = {
    method: root.getFirstPropertyValue("method"),
    name: root.getFirstPropertyValue("x-wr-calname"),
    events,
  };
}
process.stdout.write(JSON.stringify(out));
