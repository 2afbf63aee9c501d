import Fleet
import Foundation
import Testing

/// docs/json-events.md and the JSON the binary prints agree: every event type is produced by the
/// real binary (a real run on a real sshd host, a dry run, hosts, classes, --list, an error), and
/// each line's keys are checked against the doc's tables, parsed from the doc itself.
@Suite(
    "--json events against docs/json-events.md", .enabled(if: fleetAvailable, "needs root, sshd and a built govuk-fab"))
struct JSONEventsContractTests {
    struct Documented {
        var required: Set<String>
        var optional: Set<String>
    }

    /// The rows of the doc's event tables: `| \`event\` | fields | optional fields | meaning |`.
    static func documentedEvents() throws -> [String: Documented] {
        let doc = try String(contentsOfFile: GovukFabBinary.repositoryRoot + "/docs/json-events.md", encoding: .utf8)
        var events: [String: Documented] = [:]
        for line in doc.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 4, cells[0] != "`event`" else { continue }
            let name = cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            events[name] = Documented(required: names(in: cells[1]), optional: names(in: cells[2]))
        }
        return events
    }

    /// The backticked words of a table cell.
    static func names(in cell: String) -> Set<String> {
        Set(
            cell.split(separator: "`", omittingEmptySubsequences: false).enumerated()
                .filter { $0.offset % 2 == 1 }.map { String($0.element) })
    }

    @Test func everyEventTheBinaryPrintsIsDocumentedKeyForKey() async throws {
        let documented = try Self.documentedEvents()
        #expect(
            Set(documented.keys) == Set(allJSONLineEvents.map { $0.event }),
            "the doc's tables and the Encodable event types list the same events")

        let fleet = try FleetInventory(hosts: 1)
        let runs = [
            try await fleet.fab(["--json", "all", "do:echo out-line; echo err-line >&2"]),
            try await fleet.fab(["--json", "--dry-run", "all", "do:true"]),
            try await fleet.fab(["--json", "all", "hosts"]),
            try await fleet.fab(["--json", "classes"]),
            try await fleet.fab(["--json", "all", "no-such-task"]),
            try await CLI.run(["--json", "--list"]),
            try await CLI.run(["--json", "-d", "recover-goreplay"]),
        ]
        #expect(runs.map(\.status) == [0, 0, 0, 0, 2, 0, 0], "\(runs)")

        var seen: Set<String> = []
        for run in runs {
            let lines = run.stdout.split(separator: "\n")
            #expect(lines.count == run.jsonEvents.count, "every stdout line is one JSON object: \(run)")
            #expect(!run.stdout.contains(#"\/"#), "slashes are not escaped: \(run)")
            for object in run.jsonEvents {
                let name = try #require(object["event"] as? String)
                seen.insert(name)
                let time = try #require(object["time"] as? String, "\(name) has a time")
                #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(time)")
                guard let doc = documented[name] else {
                    Issue.record("event '\(name)' is not in docs/json-events.md")
                    continue
                }
                let keys = Set(object.keys).subtracting(["event", "time"])
                #expect(doc.required.isSubset(of: keys), "\(name) lacks \(doc.required.subtracting(keys))")
                #expect(
                    keys.isSubset(of: doc.required.union(doc.optional)),
                    "\(name) has undocumented \(keys.subtracting(doc.required.union(doc.optional)))")
                if name == "summary", let result = documented["host_finished"] {
                    for item in object["results"] as? [[String: Any]] ?? [] {
                        #expect(Set(item.keys).isSubset(of: result.required.union(result.optional)), "\(item)")
                    }
                }
            }
        }
        #expect(seen == Set(documented.keys), "not produced: \(Set(documented.keys).subtracting(seen))")
        #expect(runs[6].jsonEvents.first?["details"] is String, "help as a task event with its text: \(runs[6])")
        let output = runs[0].jsonEvents.filter { $0["event"] as? String == "output" }
        #expect(output.compactMap { $0["line"] as? String }.sorted() == ["err-line", "out-line"], "\(runs[0])")
    }
}
