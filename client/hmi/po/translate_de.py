#!/usr/bin/env python3
"""Rebuild po/de.po from a fresh template and the German texts below.

    xgettext --keyword=_ --keyword=N_ --keyword=dgettext:2 --from-code=UTF-8 \
        -o /tmp/hmi.pot client/hmi/*.c
    python3 client/hmi/po/translate_de.py /tmp/hmi.pot > client/hmi/po/de.po

A msgid without a German text here is reported on stderr and stays
untranslated (the English text shows)."""
import re
import sys

DE = {
    "en": "de",
    "Connected to %s": "Verbunden mit %s",
    "Not connected": "Nicht verbunden",
    "Connection to cluster lost — reconnecting…":
        "Verbindung zum Cluster unterbrochen — Verbindung wird wiederhergestellt…",
    "Station": "Station", "User": "Benutzer", "Connected": "Verbunden",
    "Node": "Knoten", "Project version": "Projektversion",
    "Current alarms": "Anstehende Alarme", "Alarms": "Alarme", "Trends": "Trends",
    "Reports": "Berichte", "Status": "Status",
    "Connecting to the cluster…": "Verbindung zum Cluster wird aufgebaut…",
    "history not available": "Verlauf nicht verfügbar", "loading…": "wird geladen…",
    "The setpoint was not written": "Der Sollwert wurde nicht geschrieben",
    "The setpoint was refused": "Der Sollwert wurde abgelehnt",
    "_Cancel": "_Abbrechen", "_Write": "_Schreiben", "Setpoint": "Sollwert", "_OK": "_OK",
    "Current value: %s": "Aktueller Wert: %s", "Allowed: 0 or 1": "Erlaubt: 0 oder 1",
    "Allowed: %g … %g %s": "Erlaubt: %g … %g %s",
    "'%s' is not a number": "„%s“ ist keine Zahl",
    "%g is outside the allowed range %g … %g":
        "%g liegt außerhalb des erlaubten Bereichs %g … %g",
    "Write %g %s to %s?\n(now %s)": "%g %s auf %s schreiben?\n(jetzt %s)",
    "Write %g to %s?": "%g auf %s schreiben?",
    "Unacknowledged": "Unquittiert", "Acknowledged": "Quittiert",
    "Returned, unacknowledged": "Gegangen, unquittiert", "Normal": "Normal",
    "Raised": "Gekommen", "Cleared": "Gegangen", "Shelved": "Zurückgestellt",
    "Unshelved": "Zurückstellung aufgehoben", "Shelving expired": "Zurückstellung abgelaufen",
    "Out of service": "Außer Betrieb", "In service": "In Betrieb", "Removed": "Entfernt",
    "System": "System", "All sections": "Alle Bereiche", "All priorities": "Alle Prioritäten",
    "Priority 1 only": "Nur Priorität 1", "Priorities 1 and 2": "Prioritäten 1 und 2",
    "Priorities 1 to 3": "Prioritäten 1 bis 3",
    "%zu of %zu alarms shown, %zu unacknowledged":
        "%zu von %zu Alarmen angezeigt, %zu unquittiert",
    "Not acknowledged: %s": "Nicht quittiert: %s",
    "The alarms were not acknowledged": "Die Alarme wurden nicht quittiert",
    "%zu acknowledged": "%zu quittiert", "%zu unchanged": "%zu unverändert",
    "%zu unknown": "%zu unbekannt", "Acknowledging…": "Wird quittiert…",
    "Select the alarms to acknowledge.": "Wählen Sie die zu quittierenden Alarme.",
    "Acknowledge every unacknowledged alarm in \"%s\" and its sub-sections?":
        "Alle unquittierten Alarme in „%s“ und seinen Unterbereichen quittieren?",
    "Acknowledge every unacknowledged alarm of the plant, system alarms included?":
        "Alle unquittierten Alarme der Anlage quittieren, Systemalarme eingeschlossen?",
    "_Acknowledge": "_Quittieren", "%zu shelved": "%zu zurückgestellt",
    "%zu unshelved": "%zu wieder aktiv", "%zu failed": "%zu fehlgeschlagen",
    "Shelving failed": "Zurückstellen fehlgeschlagen",
    "Unshelving failed": "Aufheben der Zurückstellung fehlgeschlagen",
    "Shelving…": "Wird zurückgestellt…", "Unshelving…": "Zurückstellung wird aufgehoben…",
    "Shelve alarms": "Alarme zurückstellen", "_Shelve": "_Zurückstellen",
    "Reason": "Grund", "Duration": "Dauer", "15 minutes": "15 Minuten",
    "1 hour": "1 Stunde", "8 hours": "8 Stunden", "24 hours": "24 Stunden",
    "Other…": "Andere…", "Minutes": "Minuten", "Give a reason.": "Geben Sie einen Grund an.",
    "The reason is too long.": "Der Grund ist zu lang.",
    "Select the alarms to shelve.": "Wählen Sie die zurückzustellenden Alarme.",
    "None of the selected alarms is shelved.":
        "Keiner der gewählten Alarme ist zurückgestellt.",
    "The journal could not be read: %s": "Das Meldearchiv konnte nicht gelesen werden: %s",
    "The journal could not be read": "Das Meldearchiv konnte nicht gelesen werden",
    "%zu entries, newest first; older ones follow with \"Older\"":
        "%zu Einträge, neueste zuerst; ältere mit „Ältere“",
    "%zu entries, newest first": "%zu Einträge, neueste zuerst",
    "Reading the journal…": "Meldearchiv wird gelesen…", "All states": "Alle Zustände",
    "Shelved or out of service": "Zurückgestellt oder außer Betrieb",
    "Section": "Bereich", "Priority": "Priorität", "State": "Zustand", "Time": "Zeit",
    "Message": "Meldung", "Tag": "Variable",
    "Acknowledge all in section": "Alle im Bereich quittieren",
    "_Shelve…": "_Zurückstellen…", "_Unshelve": "Zurückstellung _aufheben",
    "Last hour": "Letzte Stunde", "Last 8 hours": "Letzte 8 Stunden",
    "Last 24 hours": "Letzte 24 Stunden", "Last 7 days": "Letzte 7 Tage",
    "_Refresh": "_Aktualisieren", "_Older": "Ä_ltere", "Period": "Zeitraum",
    "Alarm": "Alarm", "Cause": "Ursache", "Change": "Wechsel", "Journal": "Meldearchiv",
    "Unack": "Unquitt.", "Acked": "Quitt.", "RTN unack": "Geg. unquitt.", "P": "P",
    "more…": "weitere…", "(out of memory)": "(kein Speicher)", "No alarms": "Keine Alarme",
    "Process values": "Prozesswerte", "Audit trail": "Bedienprotokoll",
    "Alarm journal": "Meldearchiv", "yes": "ja", "no": "nein", "Kind": "Art",
    "Object": "Objekt", "Unit": "Einheit", "Samples": "Messwerte", "Minimum": "Minimum",
    "Maximum": "Maximum", "Average": "Mittelwert", "Sections: %s": "Bereiche: %s",
    "unexpected answer": "unerwartete Antwort",
    "The report could not be fetched: %s": "Die Berichtsdaten konnten nicht geholt werden: %s",
    "The report could not be fetched": "Die Berichtsdaten konnten nicht geholt werden",
    "%s, %s (the first %d are shown)": "%s, %s (die ersten %d werden gezeigt)",
    "%s, %s": "%s, %s",
    "The data cannot be written as a report: %s":
        "Die Daten ergeben keinen gültigen Bericht: %s",
    "Choose a report on the left.": "Wählen Sie links einen Bericht.",
    "Write the times as YYYY-MM-DD HH:MM.": "Zeiten bitte als JJJJ-MM-TT HH:MM angeben.",
    "The start must be before the end.": "Der Beginn muss vor dem Ende liegen.",
    "The project has no such report.": "Das Projekt hat keinen solchen Bericht.",
    "Fetching the data…": "Daten werden geholt…",
    "Save the report as PDF": "Bericht als PDF speichern",
    "Save the report as CSV": "Bericht als CSV speichern", "_Save": "_Speichern",
    "PDF documents": "PDF-Dokumente", "CSV files": "CSV-Dateien", "Saved %s.": "%s gespeichert.",
    "The report was not saved": "Der Bericht wurde nicht gespeichert",
    "The report changed meanwhile: nothing was saved.":
        "Der Bericht hat sich inzwischen geändert: nichts gespeichert.",
    "Press Run to fetch the data.": "„Ausführen“ holt die Daten.", "Report": "Bericht",
    "_Run": "_Ausführen", "Save as _PDF…": "Als _PDF speichern…",
    "Save as _CSV…": "Als _CSV speichern…", "From": "Von", "To": "Bis",
    "The history could not be read: %s": "Der Verlauf konnte nicht gelesen werden: %s",
    "Choose up to 8 tags on the left.": "Wählen Sie links bis zu 8 Variablen.",
    "At most 8 tags can be shown at once.": "Höchstens 8 Variablen gleichzeitig.",
    "Search tags": "Variablen suchen", "Description": "Beschreibung", "10 min": "10 min",
    "1 h": "1 h", "8 h": "8 h", "24 h": "24 h", "7 days": "7 Tage", "30 days": "30 Tage",
    "Show this period up to now": "Diesen Zeitraum bis jetzt zeigen",
    "Earlier": "Früher", "Later": "Später", "Zoom in": "Vergrößern",
    "Zoom out": "Verkleinern", "Now": "Jetzt", "Follow the present": "Der Gegenwart folgen",
    "Some tags are not archived or too many: not shown.":
        "Einige Variablen werden nicht archiviert oder sind zu viele: nicht angezeigt.",
}
PLURAL = {
    "%zu tag": ("%zu Variable", "%zu Variablen"),
    "%zu row": ("%zu Zeile", "%zu Zeilen"),
    "the PDF would have %u page": ("das PDF hätte %u Seite", "das PDF hätte %u Seiten"),
    "Saved %s (%u page).": ("%s gespeichert (%u Seite).", "%s gespeichert (%u Seiten)."),
}
PLURAL_PREFIX = {
    "Shelve %zu alarm:": ("%zu Alarm zurückstellen: er meldet sich erst wieder, wenn die "
                          "Zeit um ist oder die Zurückstellung aufgehoben wird.",
                          "%zu Alarme zurückstellen: sie melden sich erst wieder, wenn die "
                          "Zeit um ist oder die Zurückstellung aufgehoben wird."),
}


def unquote(lines):
    # C-style strings as xgettext writes them
    esc = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return "".join(re.sub(r'\\(.)', lambda m: esc.get(m.group(1), m.group(1)), l[1:-1])
                   for l in lines)


def quote(s):
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"%s"' % out


def entries(text):
    for block in text.strip().split("\n\n"):
        fields, cur, comments = {}, None, []
        for line in block.splitlines():
            if line.startswith("#"):
                comments.append(line)
                continue
            m = re.match(r'^(msgid_plural|msgid|msgstr(?:\[\d\])?) (".*")$', line)
            if m:
                cur = m.group(1)
                fields[cur] = [m.group(2)]
            elif line.startswith('"') and cur:
                fields[cur].append(line)
        yield comments, {k: unquote(v) for k, v in fields.items()}


def main():
    pot = open(sys.argv[1], encoding="utf-8").read()
    out = ['# German messages of vigil-hmi, the Vigil operator station.',
           '# Generated by po/translate_de.py from the sources; edit the texts there.',
           'msgid ""', 'msgstr ""',
           '"Project-Id-Version: vigil-hmi 0.1\\n"',
           '"PO-Revision-Date: 2026-11-22 00:00+0000\\n"',
           '"Last-Translator: Vigil developers\\n"', '"Language-Team: German\\n"',
           '"Language: de\\n"',
           '"MIME-Version: 1.0\\n"', '"Content-Type: text/plain; charset=UTF-8\\n"',
           '"Content-Transfer-Encoding: 8bit\\n"',
           '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"', '']
    missing = 0
    for comments, f in entries(pot):
        mid = f.get("msgid", "")
        if mid == "":
            continue
        out += [c for c in comments if c.startswith("#.") or c.startswith("#,")]
        out.append("msgid " + quote(mid))
        if "msgid_plural" in f:
            forms = PLURAL.get(mid)
            if forms is None:
                forms = next((v for k, v in PLURAL_PREFIX.items() if mid.startswith(k)), None)
            if forms is None:
                sys.stderr.write("untranslated: %r\n" % mid)
                missing += 1
                forms = ("", "")
            out.append("msgid_plural " + quote(f["msgid_plural"]))
            out.append("msgstr[0] " + quote(forms[0]))
            out.append("msgstr[1] " + quote(forms[1]))
        else:
            t = DE.get(mid)
            if t is None:
                sys.stderr.write("untranslated: %r\n" % mid)
                missing += 1
                t = ""
            out.append("msgstr " + quote(t))
        out.append("")
    sys.stdout.write("\n".join(out))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
