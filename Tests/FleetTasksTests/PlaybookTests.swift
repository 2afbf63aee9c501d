import Fleet
import Foundation
import Testing

@testable import FleetTasks

@Suite("Playbook validation")
struct PlaybookTests {
    func error(_ text: String) -> String? {
        do {
            _ = try PlaybookLoader.parse(text, file: "playbooks/bad.yml")
            return nil
        } catch {
            return error.description
        }
    }

    @Test("the shipped playbooks load")
    func shipped() throws {
        let playbooks = try PlaybookLoader.loadDirectory(playbookDirectory)
        #expect(playbooks.map(\.name).contains("goreplay.status"))
        #expect(playbooks.count >= 70, "the fabric-scripts catalogue")
        let restart = try #require(playbooks.first { $0.name == "goreplay.restart" })
        #expect(restart.respectDataSyncWindow)
        #expect(restart.changes)
    }

    @Test(
        "errors name file, line and what is wrong",
        arguments: [
            (
                "name: x\nsummary: s\nchanges: true\nstepz: []\n",
                "playbooks/bad.yml:4:1: unknown key 'stepz' in the playbook (did you mean 'steps'?)"
            ),
            (
                "name: x\nsummary: s\nsteps:\n  - run: uptime\n",
                "playbooks/bad.yml:1:1: missing required key 'changes' in the playbook"
            ),
            (
                "name: x\nsummary: s\nchanges: maybe\nsteps:\n  - run: uptime\n",
                "playbooks/bad.yml:3:10: 'changes' must be true or false"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - run: uptime\n    sudo: id\n",
                "playbooks/bad.yml:5:5: a step has exactly one of"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - message: \"{{marker}}\"\n",
                "playbooks/bad.yml:5:14: 'marker' is not defined by an earlier step"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - read_file: {path: /x, as: marker}\n  - message: hi\n    when: marker = 'true'\n",
                "playbooks/bad.yml:7:11: cannot read condition 'marker = 'true''"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - service: {action: begin, name: goreplay}\n",
                "playbooks/bad.yml:5:23: 'service.action': invalid value 'begin': use start, stop, restart, reload, status"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - service: {action: start, name: 'gor;reboot'}\n",
                "playbooks/bad.yml:5:36: 'service.name': invalid value 'gor;reboot'"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - read_command: {command: cat /x, as: v}\n  - sudo: \"rm {{v}}\"\n",
                "playbooks/bad.yml:6:11: 'sudo': invalid value '{{v}}': 'v' is not defined here: commands may use arguments"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - wait_for_process: {name: goreplay, timeout: forever}\n",
                "playbooks/bad.yml:5:49: 'wait_for_process.timeout': invalid value 'forever'"
            ),
            (
                "name: x\nsummary: s\nchanges: true\nsteps:\n  - ensure_file: {path: /x, content: '', mode: 999}\n",
                "playbooks/bad.yml:5:48: 'ensure_file.mode': invalid value '999'"
            ),
            ("name: x\nsummary: s\nchanges: true\nsteps: [\n", "playbooks/bad.yml:5:1: invalid YAML"),
            (
                "name: x\nsummary: s\nchanges: true\nsteps: []\n",
                "playbooks/bad.yml:4:8: 'steps' must be a non-empty list of steps"
            ),
        ])
    func located(text: String, expected: String) {
        let message = error(text)
        #expect(message?.hasPrefix(expected) == true, "got: \(message ?? "no error")")
    }

    @Test("a playbook may not take a built-in task's name")
    func nameTaken() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "playbooks-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "summary: s\nname: sdo\nchanges: true\nsteps:\n  - run: id\n".write(
            toFile: directory + "/sdo.yml", atomically: true, encoding: .utf8)
        do {
            _ = try TaskRegistry.standard(playbookDirectories: [directory])
            Issue.record("accepted")
        } catch {
            #expect(
                error.description == "\(directory)/sdo.yml:2: playbook name 'sdo' is already used by a built-in task")
        }
    }

    @Test("conditions: the tiny expression language")
    func conditions() throws {
        guard case .success(let condition) = Condition.parse("marker != '' and service == 'stopped'") else {
            Issue.record("not parsed")
            return
        }
        #expect(condition.holds(["marker": "true", "service": "stopped"]))
        #expect(!condition.holds(["marker": "", "service": "stopped"]))
        #expect(!condition.holds(["marker": "true", "service": "running"]))
        guard case .success(let negated) = Condition.parse("not marker_exists") else {
            Issue.record("not parsed")
            return
        }
        #expect(negated.holds(["marker_exists": ""]))
        #expect(!negated.holds(["marker_exists": "true"]))
        for bad in ["marker ==", "Marker", "a == b", "a or b", "a == 'x'y'"] {
            if case .success = Condition.parse(bad) { Issue.record("'\(bad)' accepted") }
        }
    }
}
