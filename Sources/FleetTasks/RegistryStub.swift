import Fleet
public struct TaskDescriptor: Sendable { public let name: String; public let usage: String; public let summary: String; public let details: String; public let changesHosts: Bool; public let source: String }
public struct TaskError: Error, CustomStringConvertible { public var description: String }
public struct PlaybookError: Error, CustomStringConvertible { public var description: String }
public struct TaskRegistry: Sendable {
    public static func standard(playbookDirectories: [String]) throws(PlaybookError) -> TaskRegistry { TaskRegistry() }
    public var descriptors: [TaskDescriptor] { [] }
    public func descriptor(named: String) -> TaskDescriptor? { nil }
    public func makeTask(_ invocation: TaskInvocation, inventory: Inventory) throws(TaskError) -> any FleetTask { throw TaskError(description: "stub") }
}
