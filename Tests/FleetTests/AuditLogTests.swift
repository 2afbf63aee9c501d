import Foundation
import Testing

@testable import Fleet

@Suite("Audit log")
struct AuditLogTests {
    func record(_ index: Int) -> AuditRecord {
        AuditRecord(
            user: "oncall", argv: ["govuk-fab", "production", "puppet_class:gor", "sdo:echo \(index)"],
            summary: sampleSummary)
    }

    func objects(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test("a run writes 'started' before touching hosts, then exactly one closing line")
    func startedThenFinishedOnce() throws {
        let state = try temporaryDirectory()
        let log = try #require(AuditLog(environment: ["XDG_STATE_HOME": state]))
        let audit = RunAudit(
            log: log, user: "oncall", argv: ["govuk-fab", "production", "all", "do:true"], warn: { _ in })
        audit.started(environment: "production", hosts: ["cache-1", "cache-2"], tasks: ["do:true"])
        let first = try objects(log.path)
        #expect(first.count == 1)
        #expect(first[0]["event"] as? String == "started")
        #expect(first[0]["planned_hosts"] as? [String] == ["cache-1", "cache-2"])
        audit.finished(sampleSummary)
        audit.abandoned() // a late second Ctrl-C after the run ended adds nothing
        let lines = try objects(log.path)
        #expect(lines.map { $0["event"] as? String } == ["started", "finished"])
        #expect(lines[1]["exit_code"] as? Int == 1)
    }

    @Test("a second Ctrl-C (exit at once) still leaves an 'abandoned' line with the hosts finished so far")
    func abandonedRecordsWhatFinished() throws {
        let state = try temporaryDirectory()
        let log = try #require(AuditLog(environment: ["XDG_STATE_HOME": state]))
        let audit = RunAudit(log: log, user: "oncall", argv: ["govuk-fab"], warn: { _ in })
        audit.started(environment: "production", hosts: ["cache-1", "cache-2"], tasks: ["do:sleep 9"])
        audit.observe(finished("cache-1", "do:sleep 9", .exited(status: 0)))
        audit.abandoned()
        audit.finished(sampleSummary) // never a second closing line
        let lines = try objects(log.path)
        #expect(lines.map { $0["event"] as? String } == ["started", "abandoned"])
        #expect(lines[1]["interrupted"] as? Bool == true)
        #expect(lines[1]["exit_code"] as? Int == 130)
        #expect((lines[1]["hosts"] as? [[String: Any]])?.map { $0["host"] as? String } == ["cache-1"])
        #expect(lines[1]["environment"] as? String == "production")
    }

    @Test func pathFollowsXDG() {
        #expect(AuditLog(environment: ["XDG_STATE_HOME": "/s", "HOME": "/h"])?.path == "/s/govuk-fab/audit.jsonl")
        #expect(
            AuditLog(environment: ["XDG_STATE_HOME": "relative", "HOME": "/h"])?.path
                == "/h/.local/state/govuk-fab/audit.jsonl")
        #expect(AuditLog(environment: [:]) == nil)
    }

    @Test func appendsJSONLinesWithPrivatePermissions() throws {
        let state = try temporaryDirectory()
        let log = try #require(AuditLog(environment: ["XDG_STATE_HOME": state + "/new"]))
        try log.append(record(1))
        try log.append(record(2))
        let directoryMode = try FileManager.default.attributesOfItem(atPath: state + "/new/govuk-fab")[
            .posixPermissions]
        let fileMode = try FileManager.default.attributesOfItem(atPath: log.path)[.posixPermissions]
        #expect(directoryMode as? Int == 0o700)
        #expect(fileMode as? Int == 0o600)
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(object["user"] as? String == "oncall")
        #expect(object["environment"] as? String == "production")
        #expect(object["argv"] as? [String] == ["govuk-fab", "production", "puppet_class:gor", "sdo:echo 2"])
        #expect(object["interrupted"] as? Bool == false)
        #expect(object["exit_code"] as? Int == 1)
        #expect(object["time"] as? String == "2026-11-25T23:30:00.000Z")
        let hosts = try #require(object["hosts"] as? [[String: Any]])
        #expect(hosts.count == 5)
        #expect(hosts[2]["host"] as? String == "cache-2")
        #expect(hosts[2]["outcome"] as? String == "exit")
        #expect(hosts[2]["exit_status"] as? Int == 1)
    }

    @Test func concurrentAppendsNeverInterleave() async throws {
        let log = AuditLog(path: try temporaryDirectory() + "/a/audit.jsonl")
        let writers = 8
        let recordsEach = 50
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<recordsEach {
                        var big = record(writer * 1000 + index)
                        big.argv.append(String(repeating: "x", count: 6000)) // beyond one pipe buffer
                        try log.append(big)
                    }
                }
            }
            try await group.waitForAll()
        }
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == writers * recordsEach)
        var seen = Set<String>()
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let argv = try #require(object["argv"] as? [String])
            seen.insert(argv[3])
        }
        #expect(seen.count == writers * recordsEach)
    }

    @Test func unwritableLocationIsAnError() throws {
        let directory = try temporaryDirectory()
        try "not a directory".write(toFile: directory + "/file", atomically: true, encoding: .utf8)
        let log = AuditLog(path: directory + "/file/govuk-fab/audit.jsonl")
        #expect(throws: AuditLogError.self) { try log.append(record(1)) }
    }
}
