"""Python's answer to a fork manager: multiprocessing with the fork start method.

Prints the cost of one Process start + join (a process per task, as our Manager::spawn),
and the cost per item of Pool(2).map over N items (long-lived workers, items shipped to
them by pickling), for N in env NITEMS (default 2000).
"""
import multiprocessing as mp
import os
import time


def square(n):
    return n * n


def child(queue, n):
    queue.put(n * n)


def main():
    mp.set_start_method("fork")
    n = int(os.environ.get("NITEMS", "2000"))
    processes = max(50, n // 10)
    queue = mp.SimpleQueue()
    started = time.perf_counter()
    for i in range(processes):
        p = mp.Process(target=child, args=(queue, i))
        p.start()
        p.join()
        assert queue.get() == i * i
    process_us = (time.perf_counter() - started) * 1e6 / processes
    with mp.Pool(2) as pool:
        pool.map(square, range(10))  # workers up before timing
        started = time.perf_counter()
        assert pool.map(square, range(n)) == [i * i for i in range(n)]
        pool_item_us = (time.perf_counter() - started) * 1e6 / n
        started = time.perf_counter()
        assert pool.map(square, range(n), chunksize=1) == [i * i for i in range(n)]
        pool_one_us = (time.perf_counter() - started) * 1e6 / n
    print(f"process_us= {process_us:.1f}")
    print(f"pool_item_us= {pool_item_us:.2f}")
    print(f"pool_chunk1_us= {pool_one_us:.2f}")


if __name__ == "__main__":
    main()
