"""Exporting registered models to ONNX: conversion, the parity check, onnxruntime scoring.

Needs the ``onnx`` extra (``pip install 'loopml[onnx]'``); nothing here is
imported by loopml's core, so loopml runs without it.
"""
