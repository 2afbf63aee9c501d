import Foundation
import Testing

@testable import Fleet

/// The one JSON encoder: sorted snake_case keys, no escaped slashes, optionals omitted, and the
/// characters some line splitters break on escaped.
@Suite("JSONLines encoder")
struct JSONLinesEncoderTests {
    let time = Date(timeIntervalSince1970: 1_795_649_400) // 2026-11-25T23:30:00Z

    @Test func errorEventHasTimeAndUnescapedSlashes() {
        let line = JSONLines.line(ErrorEvent(message: "/nonexistent/x.yml: cannot read", exitCode: .usage), time: time)
        #expect(
            line
                == #"{"event":"error","exit_code":2,"message":"/nonexistent/x.yml: cannot read","time":"2026-11-25T23:30:00.000Z"}"#
                + "\n")
    }

    @Test func lineSeparatorsAndDeleteAreEscapedSoOneObjectStaysOneLine() throws {
        let text = "a\u{2028}b\u{2029}c\u{7F}d\ne\u{1}"
        let line = JSONLines.line(NoticeEvent(message: text, host: nil), time: time)
        #expect(line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"))
        #expect(
            !line.unicodeScalars.contains { [0x2028, 0x2029, 0x7F].contains($0.value) }, "\(line.debugDescription)")
        #expect(line.split(whereSeparator: \.isNewline).count == 1)
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == text)
        #expect(object["host"] == nil, "nil fields are omitted, never null")
    }

    @Test func resultFieldsFollowTheOutcome() throws {
        let result = HostTaskResult(
            host: "cache-1", task: "do:x", outcome: .timedOut(after: .milliseconds(1500)),
            duration: .milliseconds(1501), lastStderrLine: nil, time: time)
        let line = JSONLines.line(HostFinishedEvent(result: JSONResult(result)), time: time)
        #expect(
            line
                == #"{"duration_s":1.501,"event":"host_finished","host":"cache-1","outcome":"timeout","task":"do:x","time":"2026-11-25T23:30:00.000Z","timeout_s":1.5}"#
                + "\n")
    }

    @Test func auditRecordNamesTheInventory() throws {
        var record = AuditRecord.started(
            user: "oncall", argv: ["govuk-fab"], environment: "production", hosts: ["a"],
            tasks: ["do:x"], time: time)
        record.inventory = InventoryOrigin(path: "/srv/fab/inventories/production.yml", source: .checkout)
        let object = try #require(JSONSerialization.jsonObject(with: Data(record.jsonLine.utf8)) as? [String: Any])
        #expect(object["inventory"] as? String == "/srv/fab/inventories/production.yml")
        #expect(object["inventory_source"] as? String == "checkout")
        #expect(object["planned_hosts"] as? [String] == ["a"])
        #expect(object["hosts"] == nil && object["exit_code"] == nil, "a started line has no outcomes yet")
    }
}
