import { type ChildProcess, spawn } from "node:child_process";

/**
 * Python's pty module: runs argv[1:] on a new pseudo-terminal 80 columns wide,
 * relays this process's stdin to it and its output to stdout, and exits with
 * its exit code.
 */
const relay = `
import fcntl, os, pty, select, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    os.execvp(sys.argv[1], sys.argv[1:])
inputs = [fd, 0]
while True:
    ready = select.select(inputs, [], [])[0]
    if fd in ready:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 4096)
        if data:
            os.write(fd, data)
        else:
            inputs.remove(0)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
`;

/**
 * Runs `command` at a terminal of its own, as a person would (stdin and stdout
 * are a pseudo-terminal): what is written to the returned process's stdin is
 * typed, and its stdout is the screen (lines end in "\r\n"; typed text is
 * echoed).
 */
export function spawnAtTerminal(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): ChildProcess {
  return spawn("python3", ["-c", relay, command, ...args], { cwd: options.cwd, env: options.env ?? process.env });
}
