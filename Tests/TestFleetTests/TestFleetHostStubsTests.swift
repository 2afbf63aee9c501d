import Foundation
import TestFleet
import Testing

@Suite("Stub host commands", .enabled(if: TestFleet.isSupported))
struct TestFleetHostStubsTests {
    func ssh(_ fleet: TestFleet, _ host: String, _ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        process.arguments = fleet.sshArguments(for: try #require(fleet.host(named: host))) + [command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("a stub records argv and user on enabled hosts; elsewhere it is the real command, and never a real reboot")
    func recordsAndPassesThrough() throws {
        var options = TestFleetOptions(hostCount: 2, namePrefix: "stub")
        options.privatePaths += [TestFleetHostStubs.binDirectory]
        let fleet = try TestFleet.start(options)
        defer { fleet.stop() }
        let stubs = try TestFleetHostStubs.install(["govukfab-stub-probe", "shutdown"], on: fleet)
        try FileManager.default.removeItem(
            atPath: fleet.hosts[1].realPath(TestFleetHostStubs.stateDirectory + "/enabled"))
        try stubs.setBehaviour(on: "stub-1", "govukfab-stub-probe", exit: 3, stdout: "probed\n")

        let asUser = try ssh(fleet, "stub-1", "govukfab-stub-probe 'a b' \"c'd\" '' '$(x)'")
        #expect(asUser.status == 3 && asUser.output == "probed\n", "\(asUser)")
        let viaSudo = try ssh(fleet, "stub-1", "sudo -n govukfab-stub-probe -x")
        #expect(viaSudo.status == 3, "\(viaSudo)")
        let calls = try stubs.calls(on: "stub-1")
        #expect(calls.map(\.user) == [fleet.user, "root"])
        #expect(calls.map(\.arguments) == [["a b", "c'd", "", "$(x)"], ["-x"]])
        #expect(calls[0].time <= calls[1].time)

        // Not enabled: the real command of that name (there is none), and a reboot is refused.
        #expect(try ssh(fleet, "stub-2", "govukfab-stub-probe").status == 127)
        let reboot = try ssh(fleet, "stub-2", "sudo -n shutdown -r now")
        #expect(reboot.status == 1 && reboot.output.contains("refused on a test host"), "\(reboot)")
        #expect(try stubs.calls(on: "stub-2").isEmpty)

        // Each host's own /usr/local/bin: the test machine's is never written.
        #expect(!FileManager.default.fileExists(atPath: TestFleetHostStubs.binDirectory + "/govukfab-stub-probe"))
    }

    @Test("a fleet without a private /usr/local/bin gets no stubs, and the machine's directory is untouched")
    func refusesTheMachinesDirectory() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "nostub"))
        defer { fleet.stop() }
        #expect(throws: StubError.self) { _ = try TestFleetHostStubs.install(["govukfab-stub-probe"], on: fleet) }
        #expect(!FileManager.default.fileExists(atPath: TestFleetHostStubs.binDirectory + "/govukfab-stub-probe"))
    }
}
