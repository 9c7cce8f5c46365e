using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Hypervisor.Accel.Tcg.Decoding;

namespace Hypervisor.Accel.Tcg.Jit;

/// <summary>
/// The background compiler shared by all vCPUs of the process: one thread below normal priority that emits the IL of
/// queued regions and has the runtime compile it (<see cref="JitTranslator.Translate"/>), so that a vCPU never waits
/// for a translation: it keeps interpreting the block until the translation is ready and installs it at the block's
/// next execution (<see cref="JitEngine.Lookup"/>). Each engine bounds its own queue (<see cref="JitOptions.MaxQueued"/>).
/// </summary>
internal static class JitCompiler
{
    private static readonly BlockingCollection<Job> s_queue = [];
    private static readonly Lazy<Thread?> s_thread = new(Start);

    /// <summary>Whether the compiler thread runs (false if it could not be started; engines then translate inline).</summary>
    public static bool Available => s_thread.Value is not null;

    /// <summary>Queues <paramref name="job"/>; its engine counted it in its queue already.</summary>
    public static void Enqueue(Job job) => s_queue.Add(job);

    private static Thread? Start()
    {
        try
        {
            var t = new Thread(Run) { IsBackground = true, Name = "tcg JIT compiler", Priority = ThreadPriority.BelowNormal };
            t.Start();
            return t;
        }
        catch (OutOfMemoryException)
        {
            return null;
        }
        catch (ThreadStartException)
        {
            return null;
        }
    }

    private static void Run()
    {
        foreach (Job job in s_queue.GetConsumingEnumerable())
        {
            job.Execute();
        }
    }

    /// <summary>One region to translate: written by the compiler thread, read by the vCPU once <see cref="Done"/> is set.</summary>
    internal sealed class Job(List<DecodedBlock> blocks, int stackBits, JitEngine engine)
    {
        private volatile bool _done;
        private volatile bool _cancelled;

        /// <summary>Whether the compiler finished with the job (then Result, Error and Ticks are final).</summary>
        public bool Done => _done;

        public JitRegion? Result { get; private set; }

        public ExceptionDispatchInfo? Error { get; private set; }

        public long Ticks { get; private set; }

        /// <summary>The vCPU no longer wants the result (its page changed or its entry left the cache).</summary>
        public void Cancel() => _cancelled = true;

        internal void Execute()
        {
            try
            {
                if (!_cancelled)
                {
                    long start = Stopwatch.GetTimestamp();
                    Result = JitTranslator.Translate(blocks, stackBits);
                    Ticks = Stopwatch.GetTimestamp() - start;
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A translator bug: reported on the vCPU thread when it installs the job, like an inline translation.
                Error = ExceptionDispatchInfo.Capture(ex);
            }
            finally
            {
                _done = true;
                engine.JobFinished(Ticks);
            }
        }
    }
}
