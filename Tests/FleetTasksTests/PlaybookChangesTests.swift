import Fleet
import Foundation
import Testing

@testable import FleetTasks

/// `changes: false` skips confirmation in `confirm_changes` environments, so it must agree with
/// the steps: a playbook that can change hosts cannot call itself read-only (issue #15).
@Suite("Playbook changes derived from its steps")
struct PlaybookChangesTests {
    func playbook(changes: Bool, _ step: String) -> String {
        """
        name: x.probe
        summary: A probe.
        changes: \(changes)
        steps:
          - run_read: uptime
          - \(step)
        """
    }

    func loadError(_ text: String) -> PlaybookError? {
        do {
            _ = try PlaybookLoader.parse(text, file: "playbooks/x.yml")
            return nil
        } catch {
            return error
        }
    }

    @Test(
        "a step that can change hosts under changes: false is a located load error with the fix",
        arguments: [
            ("sudo: touch /etc/pwned", "write it as sudo_read:"),
            ("run: rm -rf ~/cache", "write it as run_read:"),
            ("ensure_file: {path: /etc/x, content: y}", "set changes: true"),
            ("service: {action: restart, name: nginx}", "set changes: true"),
        ])
    func contradictionRefused(step: String, fix: String) throws {
        let error = try #require(loadError(playbook(changes: false, step)), "accepted: \(step)")
        #expect(error.location.line == 6 && error.location.column == 5, "\(error)")
        #expect("\(error)".hasPrefix("playbooks/x.yml:6:5: this step ("), "\(error)")
        #expect("\(error)".contains("can change hosts but the playbook says changes: false (line 3)"), "\(error)")
        #expect("\(error)".contains(fix), "\(error)")
    }

    @Test(
        "read forms keep a playbook read-only",
        arguments: [
            "sudo_read: varnishstat -1",
            "run_read: ntpq -p",
            "service: {action: status, name: nginx}",
            "read_command: {command: govuk_puppet --noop, as: out, sudo: true}",
            "check: {command: test -f /x, sudo: true, as: present}",
            "read_file: {path: /etc/x, as: x}",
            "wait_for_process: {name: nginx}",
            "message: hello",
        ])
    func readFormsAccepted(step: String) throws {
        let book = try PlaybookLoader.parse(playbook(changes: false, step), file: "playbooks/x.yml")
        #expect(!book.changes)
        #expect(!book.steps.contains { $0.canChangeHosts })
    }

    @Test("changes: true is always allowed, and makes the task ask first")
    func changingPlaybook() throws {
        let book = try PlaybookLoader.parse(playbook(changes: true, "sudo: touch /etc/x"), file: "playbooks/x.yml")
        #expect(book.descriptor.changesHosts)
        let readOnly = try PlaybookLoader.parse(
            playbook(changes: true, "sudo_read: cat /etc/x"), file: "playbooks/x.yml")
        #expect(readOnly.descriptor.changesHosts)
    }

    @Test("sudo_read runs through sudo like sudo:, and help says read-only")
    func sudoReadRunsWithSudo() throws {
        let book = try PlaybookLoader.parse(
            playbook(changes: false, "sudo_read: varnishstat -1"), file: "playbooks/x.yml")
        guard case .sudo(let command, let readOnly) = book.steps[1].action else {
            Issue.record("\(book.steps[1].action)")
            return
        }
        #expect(readOnly && command.description == "varnishstat -1")
        #expect(book.steps[1].summary == "sudo (read-only) `varnishstat -1`")
    }

    @Test("every catalogue playbook loads; the read-only ones have only read steps, and none lost its sudo")
    func catalogue() throws {
        let books = try PlaybookLoader.loadDirectory(packageRoot + "/playbooks")
        #expect(books.count >= 70)
        let readOnly = books.filter { !$0.changes }
        #expect(readOnly.allSatisfy { !$0.steps.contains { $0.canChangeHosts } })
        // The privileged read-only ones still run through sudo (they read root-only state).
        let privileged = readOnly.filter { book in
            book.steps.contains { if case .sudo(_, true) = $0.action { true } else { false } }
        }.map(\.name).sorted()
        #expect(
            privileged == [
                "apt", "apt.autoremove_dry_run", "apt.packages_with_reboots", "apt.unattended_upgrade_dry_run", "cache",
                "cache.stats", "mysql.slave_status", "nginx.configtest", "rabbitmq.status", "vm.deprecated_library",
                "vm.stopped_jobs",
            ], "\(privileged)")
    }
}
