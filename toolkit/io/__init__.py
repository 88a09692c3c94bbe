"""Reading and writing tables: CSV and Parquet through pyarrow, never torch.

Training and `toolkit predict` read files through this one reader, so format detection,
chunking and the wording of errors (file, row, column, value) are the same everywhere.
"""
