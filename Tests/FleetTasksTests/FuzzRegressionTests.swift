import Fleet
import Testing

@testable import FleetTasks

/// Inputs found by the libFuzzer harnesses (Sources/Fuzzing, docs/fuzzing.md), kept as tests.
@Suite("Fuzz findings: playbooks")
struct PlaybookFuzzRegressionTests {
    /// FuzzPlaybook's invariant "a playbook's name is a task word the command line reaches": a
    /// playbook named `all` (or any selector word) loaded, but `govuk-fab ENV all` selects hosts,
    /// so the task could never run.
    @Test(arguments: FabricCommandLine.selectorNames)
    func selectorWordsAreRefusedAsNames(_ name: String) {
        let text = "name: \(name)\nsummary: Shadowed.\nchanges: false\nsteps:\n  - run_read: uptime\n"
        #expect {
            _ = try PlaybookLoader.parse(text, file: "playbooks/\(name).yml")
        } throws: { error in
            let error = error as? PlaybookError
            return error?.location.line == 1 && "\(error!)".contains("host selector")
        }
    }

    @Test func aNameThatOnlyStartsLikeASelectorStillLoads() throws {
        let text = "name: all.hosts\nsummary: Fine.\nchanges: false\nsteps:\n  - run_read: uptime\n"
        #expect(try PlaybookLoader.parse(text, file: "playbooks/all.hosts.yml").name == "all.hosts")
    }
}
